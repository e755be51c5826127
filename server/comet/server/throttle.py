"""Back-off for guessing: how long a source must wait before its next attempt.

Failures are counted per (account, source address) and per source address alone,
never per account alone, so nobody can lock an account's owner out by failing on
purpose from elsewhere. A few failures are free; after that each further attempt
has to wait twice as long after the latest failure as the one before, up to a cap.
Attempts refused for waiting are not failures: they neither extend the wait nor
renew it. Failures older than the window are forgotten.

No database here: the store counts failures and asks this module for the verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class BackoffPolicy:
    # Failures allowed for one account from one source before back-off starts.
    free_per_account_source: int = 5
    # Failures allowed from one source (any accounts) before back-off starts.
    free_per_source: int = 20
    # The first wait; each further failure doubles it.
    first_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(minutes=15)
    # Failures older than this are forgotten.
    window: timedelta = timedelta(minutes=15)

    def delay(self, failures: int, free: int) -> timedelta:
        """The wait after the latest of ``failures`` failures, ``free`` of them free."""
        if failures < free:
            return timedelta(0)
        doublings = min(failures - free, 30)
        delay: timedelta = self.first_delay * (1 << doublings)
        return min(self.max_delay, delay)


@dataclass(frozen=True)
class FailureCount:
    """Failures in the window, and when the latest happened."""

    failures: int
    latest: datetime | None


def retry_after(
    policy: BackoffPolicy, *, pair: FailureCount, source: FailureCount, now: datetime
) -> int:
    """Whole seconds the source must still wait (0: it may try now)."""
    waits = [
        _remaining(policy.delay(pair.failures, policy.free_per_account_source), pair, now),
        _remaining(policy.delay(source.failures, policy.free_per_source), source, now),
    ]
    return max(math.ceil(w.total_seconds()) for w in waits)


def _remaining(delay: timedelta, count: FailureCount, now: datetime) -> timedelta:
    if not delay or count.latest is None:
        return timedelta(0)
    return max(timedelta(0), count.latest + delay - now)
