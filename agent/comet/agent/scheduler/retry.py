"""The retry plan of a failed scheduled job."""

from __future__ import annotations

from datetime import datetime, timedelta

from comet.agent.scheduler.spec import ScheduleSpec
from comet.agent.scheduler.wallclock import to_utc


def retry_times(spec: ScheduleSpec, failed_at: datetime) -> list[datetime]:
    """When to retry a job of ``spec`` that failed at ``failed_at``: ``retry_count``
    attempts, each ``retry_delay_seconds`` after the previous one (aware UTC, ascending).
    No retries when either is zero."""
    failed_at = to_utc(failed_at)
    if spec.retry_count <= 0 or spec.retry_delay_seconds <= 0:
        return []
    step = timedelta(seconds=spec.retry_delay_seconds)
    return [failed_at + step * attempt for attempt in range(1, spec.retry_count + 1)]
