"""The agent's error root. Every error a person may see carries a stable ``code``.

Codes are registered here once and never reused, so logs and scripts can match them.
"""

from __future__ import annotations

import errno as _errno


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


class LocalPathError(AgentError):
    """A path on this device cannot be used as asked (missing, wrong type, no
    permission, full or read-only disk): the message says which path and what to do.
    ``code`` is ``path.<errno name>`` (``path.ENOSPC``), stable per cause."""

    code = "path"

    def __init__(self, message: str, *, errno_name: str = "") -> None:
        super().__init__(message)
        if errno_name:
            self.code = f"path.{errno_name}"

    @classmethod
    def from_os_error(cls, error: OSError, *, path: object = None) -> LocalPathError:
        name = _errno.errorcode.get(error.errno or 0, "")
        return cls(os_error_sentence(error, path=path), errno_name=name)


def os_error_sentence(error: OSError, *, path: object = None) -> str:
    """One sentence a person can act on for an ``OSError``: what was wrong with which
    path (``path``, else the error's own file name) and what to do. The single
    mapping of OS errors to words for every Comet command and job."""
    where = str(path if path is not None else (error.filename or ""))
    named = f"{where}: " if where else ""
    code = error.errno or 0
    if code == _errno.EPIPE:
        return "the reader of the output went away (broken pipe)"
    if code == _errno.EADDRINUSE:
        return f"{where or 'the port'} is in use; stop the program using it or choose another"
    if code == _errno.EADDRNOTAVAIL:
        return f"{named}this address is not one of this machine's; listen on one of its own"
    sentence = _SENTENCES.get(code)
    if sentence is not None:
        return named + sentence
    reason = error.strerror or str(error)
    return f"{named}{reason[:1].lower()}{reason[1:]}"


_SENTENCES = {
    _errno.ENOENT: "does not exist; check the path (a folder it should be in may be missing)",
    _errno.ENOTDIR: "a part of this path is a file, not a folder; check the path",
    _errno.EISDIR: "is a folder, but a file is needed here; give a file name",
    _errno.EEXIST: "already exists; remove it or choose another path",
    _errno.ENOTEMPTY: "the folder is not empty; empty it or choose another",
    _errno.EACCES: "permission denied; run as a user allowed to use it, or change its"
    " permissions (ls -ld shows them)",
    _errno.EPERM: "operation not permitted; run as a user allowed to use it, or change"
    " its permissions or attributes (lsattr shows immutable files)",
    _errno.ENOSPC: "no space left on the disk; free some space (df -h shows it) or choose"
    " a destination on another disk",
    _errno.EDQUOT: "the disk quota is used up; free some space or ask for a larger quota",
    _errno.EROFS: "the filesystem is read-only; choose a destination on a writable disk",
    _errno.ENAMETOOLONG: "the path or a name in it is too long for the filesystem",
    _errno.ELOOP: "too many symbolic links (a link loop?); check the links along the path",
    _errno.EMFILE: "too many open files; raise the limit (ulimit -n) and try again",
    _errno.ENFILE: "the system has too many open files; close programs and try again",
    _errno.EBUSY: "the file or device is busy; try again when it is free",
    _errno.EIO: "input/output error: the disk or network filesystem may be failing; check"
    " the system log (dmesg)",
    _errno.ENXIO: "no such device; the disk or device may be disconnected",
    _errno.ETXTBSY: "the file is in use as a running program; stop it and try again",
}
