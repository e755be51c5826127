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

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class BackupReporter(Protocol):
    def expected(self, files: int, size: int) -> None:
        """The parent snapshot's file count and size: an estimate of this backup's
        totals, for an ETA (called once before any file, only when there is a parent)."""
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

    def expected(self, files: int, size: int) -> None:
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
