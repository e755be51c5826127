"""The retention window of a policy: when a scheduled retention may delete from an
immutable bucket without anyone re-entering a password.

An administrator sets it in the policy (``retention_window``: ``start_minute`` after
midnight UTC, for ``minutes``); the device cannot change it. Inside the window a
device of the policy's users gets a delete grant for one of its own buckets that
ends when the window closes. A compromised device can do no more with it than the
scheduled retention would: objects within their protection stay undeletable, what
it deletes goes to the trash for another protection period, and retention keeps
re-protecting what snapshots still need (``StorageService.ExtendProtection``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

MINUTES_PER_DAY = 24 * 60


def window_end(body: dict[str, Any], now: datetime) -> datetime | None:
    """When the policy's retention window that contains ``now`` closes; None when the
    policy has no window or ``now`` is outside it."""
    window = body.get("retention_window") or {}
    minutes = min(int(window.get("minutes", 0) or 0), MINUTES_PER_DAY)
    if minutes <= 0:
        return None
    start = int(window.get("start_minute", 0) or 0) % MINUTES_PER_DAY
    now = now.astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # The window that opened today, or yesterday's when it runs past midnight.
    for day in (0, -1):
        opened = midnight + timedelta(days=day, minutes=start)
        closes = opened + timedelta(minutes=minutes)
        if opened <= now < closes:
            return closes
    return None
