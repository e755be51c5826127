"""The coalescing buffer for pure progress updates of running jobs.

A running job reports its progress every second or so; writing each one would make
the database the bottleneck of report ingestion. Progress is the one part of a
report that may be lost (the next report carries a newer value), so such updates
wait here and are written in batches (``JobStore.flush_progress``). Only the newest
counter per job is kept. Status changes, counters, final reports and log lines never
pass through here: they are written before the report is acknowledged.

Pure data structure: no database, no asyncio."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # jobs.py imports this module
    from comet.server.store.jobs import JobProgress

__all__ = ["PendingProgress", "ProgressBuffer"]


@dataclass(frozen=True)
class PendingProgress:
    job_id: str
    device_id: str
    progress: JobProgress
    reported_at: datetime  # when the newest report of this job arrived


class ProgressBuffer:
    """Newest pending progress per job, until it is taken for writing."""

    def __init__(self) -> None:
        self._pending: dict[str, PendingProgress] = {}

    def offer(
        self, job_id: str, device_id: str, progress: JobProgress, reported_at: datetime
    ) -> None:
        """Keeps ``progress`` if its counter is newer than the pending one; a stale
        counter still counts as a sign of life (``reported_at``)."""
        held = self._pending.get(job_id)
        if held is not None and held.progress.counter >= progress.counter:
            progress = held.progress
        if held is not None:
            reported_at = max(reported_at, held.reported_at)
        self._pending[job_id] = PendingProgress(job_id, device_id, progress, reported_at)

    def restore(self, entries: list[PendingProgress]) -> None:
        """Puts back entries whose write failed, without undoing newer offers."""
        for entry in entries:
            self.offer(entry.job_id, entry.device_id, entry.progress, entry.reported_at)

    def pop(self, job_id: str) -> PendingProgress | None:
        """Removes and returns the job's pending progress (a durable write of the
        job is about to include it)."""
        return self._pending.pop(job_id, None)

    def take(self) -> list[PendingProgress]:
        """Everything pending, oldest offer first; the buffer is empty afterwards."""
        taken = list(self._pending.values())
        self._pending = {}
        return taken

    def __len__(self) -> int:
        return len(self._pending)
