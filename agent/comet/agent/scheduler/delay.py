"""The random delay of a run: spread over [0, ceiling), yet fixed for a given run.

The delay is derived from a hash of (schedule id, planned time) instead of a random number
generator, so an agent that restarts, or evaluates the same run twice, gets the same delay.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta


def random_delay(schedule_id: str, planned: datetime, ceiling: timedelta) -> timedelta:
    """A whole number of seconds in [0, ceiling) (zero when the ceiling is under 1 s)."""
    span = int(ceiling.total_seconds())
    if span <= 0:
        return timedelta(0)
    key = f"{schedule_id}\x00{planned.timestamp():.6f}".encode()
    digest = hashlib.blake2b(key, digest_size=8, person=b"comet-sched-dly").digest()
    return timedelta(seconds=int.from_bytes(digest, "big") % span)
