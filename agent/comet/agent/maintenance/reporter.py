"""Progress reporting for maintenance jobs: a small Protocol with a no-op default.

Called from the job's thread; implementations must be quick and must not raise.
"""

from __future__ import annotations

from typing import Protocol


class MaintenanceReporter(Protocol):
    def phase(self, name: str, total: int) -> None:
        """A step began (``mark``, ``repack``, ``read packs`` ...) with ``total`` units
        of work to do (0 when unknown)."""
        ...

    def advance(self, count: int) -> None:
        """``count`` more units of the current step are done."""
        ...

    def note(self, message: str) -> None:
        """Something a person should read in the job log (informational)."""
        ...


class NullMaintenanceReporter:
    """Ignores every report."""

    def phase(self, name: str, total: int) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def note(self, message: str) -> None:
        pass
