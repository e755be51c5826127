"""Typed inputs and the result of a backup job."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from comet.agent.reporter import JobWarning


@dataclass(frozen=True)
class FilesSource:
    """Files and folders. ``includes`` are absolute paths; an entry is skipped when a
    glob of ``excludes`` matches its absolute path or its name (``fnmatch``, ``*``
    crosses ``/``), or a regex of ``exclude_regexes`` is found in its absolute path."""

    includes: tuple[str, ...] | list[str]
    excludes: tuple[str, ...] | list[str] = ()
    exclude_regexes: tuple[str, ...] | list[str] = ()


@dataclass(frozen=True)
class ProgramSource:
    """A command's stdout, stored as one virtual file named ``save_as``. A string
    command runs through the shell. stderr output becomes a warning; a non-zero exit
    fails the job (ProgramFailedError)."""

    command: list[str] | str
    save_as: str


BackupSource = FilesSource | ProgramSource


@dataclass(frozen=True)
class BackupOptions:
    """Which item and device a snapshot belongs to, and how to take it."""

    item_id: str
    device_id: str
    _: KW_ONLY
    rescan_unchanged: bool = False
    tags: tuple[str, ...] = ()
    hostname: str = ""


@dataclass(frozen=True)
class BackupResult:
    snapshot_id: bytes
    parent_id: bytes | None
    files: int
    dirs: int
    total_bytes: int
    bytes_read: int
    uploaded_bytes: int
    blobs: int
    new_blobs: int
    warnings: tuple[JobWarning, ...]
    # Files the small-file reading process read, and its own peak memory in bytes.
    reader_files: int = 0
    reader_peak_rss: int = 0

    @property
    def has_warnings(self) -> bool:
        return bool(self.warnings)
