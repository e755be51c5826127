"""Progress reporting for engine jobs: small Protocols with no-op defaults, and the
``JobWarning`` record that per-file problems become.

Reporters are called from the job's thread; implementations must be quick and must not
raise. Must not import grpc, asyncio or Qt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class JobWarning:
    """A per-file problem that did not stop the job (job status Warning)."""

    path: str
    message: str
    # False for a path that is not one of the user's files (a program item's stored
    # output name): such a line reaches the server whole even when file names must not.
    names_user_file: bool = True

    @property
    def about_file(self) -> bool:
        return bool(self.path) and self.names_user_file

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class BackupReporter(Protocol):
    def expected(self, total_bytes: int, files: int) -> None:
        """The size of the parent snapshot, the best guess of this one's, given once
        before any file is read (not called for a first backup)."""
        ...

    def file_started(self, path: str, size: int) -> None:
        """A file's content is about to be read."""
        ...

    def file_unchanged(self, path: str, size: int) -> None:
        """A file matched its parent snapshot's node; its content was not read."""
        ...

    def bytes_read(self, count: int) -> None:
        """``count`` more bytes of source content were read and chunked."""
        ...

    def bytes_uploaded(self, count: int) -> None:
        """A pack of ``count`` bytes was stored."""
        ...

    def warning(self, warning: JobWarning) -> None:
        """A per-file problem was recorded (it is also in the job's result)."""
        ...


class NullBackupReporter:
    """Ignores every report."""

    def expected(self, total_bytes: int, files: int) -> None:
        pass

    def file_started(self, path: str, size: int) -> None:
        pass

    def file_unchanged(self, path: str, size: int) -> None:
        pass

    def bytes_read(self, count: int) -> None:
        pass

    def bytes_uploaded(self, count: int) -> None:
        pass

    def warning(self, warning: JobWarning) -> None:
        pass


class RestoreReporter(Protocol):
    def file_started(self, path: str, size: int) -> None:
        """A node is about to be restored (``size`` is 0 for non-files)."""
        ...

    def bytes_written(self, count: int) -> None:
        """``count`` more bytes of content were handed to the target."""
        ...

    def warning(self, warning: JobWarning) -> None:
        """A per-file problem was recorded (it is also in the job's result)."""
        ...


class NullRestoreReporter:
    """Ignores every report."""

    def file_started(self, path: str, size: int) -> None:
        pass

    def bytes_written(self, count: int) -> None:
        pass

    def warning(self, warning: JobWarning) -> None:
        pass
