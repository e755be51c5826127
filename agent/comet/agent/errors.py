"""The agent's error root. Every error a person may see carries a stable ``code``.

Codes are registered here once and never reused, so logs and scripts can match them.
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""

    code = "agent"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class CancelledError(AgentError):
    """A job was cancelled through its CancelToken; nothing was committed."""

    code = "cancelled"


class RepositoryError(AgentError):
    """Root of the repository (vault format) errors; all of them are fatal to a job."""

    code = "repository"


class RepositoryNotFoundError(RepositoryError):
    """The storage holds no repository (no ``config`` object)."""

    code = "repository.not_found"


class RepositoryExistsError(RepositoryError):
    """``init`` was asked to create a repository where one already exists."""

    code = "repository.exists"


class WrongVaultKeyError(RepositoryError):
    """No key file of the repository opens with the given vault key."""

    code = "repository.wrong_vault_key"


class UnsupportedFormatError(RepositoryError):
    """An object uses a format version or algorithm this agent does not know."""

    code = "repository.unsupported_format"


class IntegrityError(RepositoryError):
    """Stored data is damaged or was tampered with (bad magic, tag or hash)."""

    code = "repository.integrity"


class BlobNotFoundError(RepositoryError):
    """A blob a tree or snapshot refers to is in no index."""

    code = "repository.blob_not_found"


class SnapshotNotFoundError(RepositoryError):
    """No snapshot has the requested id."""

    code = "repository.snapshot_not_found"


class LockedError(RepositoryError):
    """Another job holds a conflicting lock on the repository."""

    code = "repository.locked"


class LockLostError(RepositoryError):
    """This job's repository lock was removed by someone else while the job ran."""

    code = "repository.lock_lost"


class DataMissingError(RepositoryError):
    """Data a backup relies on vanished before its snapshot was committed."""

    code = "repository.data_missing"


class ChunkerUnavailableError(RepositoryError):
    """The native content-defined chunker is not installed (no slow fallback is used)."""

    code = "repository.chunker_unavailable"


class BackupError(AgentError):
    """Root of errors that end a backup job (per-file problems are warnings instead)."""

    code = "backup"


class SourceError(BackupError):
    """The backup source is unusable as a whole (for example a relative include path)."""

    code = "backup.source"


class ProgramFailedError(BackupError):
    """A program-output source exited with a non-zero status or could not be started."""

    code = "backup.program_failed"


class RestoreError(AgentError):
    """Root of errors that end a restore job (per-file problems are warnings instead)."""

    code = "restore"


class MaintenanceError(AgentError):
    """Root of errors that end a vault maintenance job (retention, prune, reindex)."""

    code = "maintenance"


class RetentionPolicyError(MaintenanceError):
    """A retention policy is malformed or would delete every snapshot of an item."""

    code = "maintenance.retention_policy"


class PruneRefusedError(MaintenanceError):
    """Prune stopped before deleting anything because the vault is damaged in a way
    that deleting could make worse (unreadable trees, blobs missing from every index)."""

    code = "maintenance.prune_refused"


class DamagedDataError(IntegrityError):
    """A file (or directory listing) being restored uses data that cannot be read; the
    message names the file. A restore with ``allow_partial`` zero-fills it instead."""

    code = "restore.damaged_data"


class ArchiveWriteError(RestoreError):
    """The archive stream of an archive or program restore could not be written."""

    code = "restore.archive_write"


class RestoreProgramError(RestoreError):
    """A restore command or archive tool could not be started, or exited with an error."""

    code = "restore.program_failed"


class BrowseError(AgentError):
    """Root of errors when browsing or searching a snapshot's contents."""

    code = "browse"


class BrowsePathError(BrowseError):
    """The path to list is malformed, absent from the snapshot, or not a directory."""

    code = "browse.path"
