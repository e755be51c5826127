"""Retention policy evaluation: which snapshots a policy keeps. Pure: no storage, no clock.

Codes are Comet's (mode 801/802, range types 900-909). A snapshot's *time* is its
``start_ns`` (when the job ran); ties are broken by snapshot id so results are
deterministic. Calendar periods (days, weeks, months) are taken in the ``tz`` passed in,
using wall-clock dates, so a day that is 23 or 25 hours long around a DST change is still
one day. Snapshots are evaluated per ``(item_id, device_id)`` group, never across groups.
"""

from __future__ import annotations

import calendar
import enum
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import TypeVar

from comet.agent.errors import RetentionPolicyError
from comet.agent.repository.snapshot import Snapshot

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_K = TypeVar("_K", date, int)


class RetentionMode(enum.IntEnum):
    KEEP_EVERYTHING = 801
    DELETE_EXCEPT = 802


class RangeType(enum.IntEnum):
    MOST_RECENT_JOBS = 900
    NEWER_THAN = 901
    JOBS_SINCE = 902
    FIRST_JOB_EACH_DAY = 903
    FIRST_JOB_EACH_MONTH = 905
    FIRST_JOB_EACH_WEEK = 906
    LAST_BACKUPS_ONE_PER_DAY = 907
    LAST_BACKUPS_ONE_PER_WEEK = 908
    LAST_BACKUPS_ONE_PER_MONTH = 909


@dataclass(frozen=True)
class RetentionRange:
    """One rule of a policy. Which fields matter depends on ``type``:

    * 900 ``jobs``: the ``jobs`` newest snapshots.
    * 901 ``newer_than_ns``: snapshots whose time is strictly after it.
    * 902 ``days``, ``weeks``, ``months``: snapshots at or after the moment that many
      calendar months, then weeks and days, before now (wall-clock in ``tz``; a month
      back from 31 March is the last day of February).
    * 903 ``days``: the first (oldest) snapshot of each of the last ``days`` calendar
      days; today is the first of them.
    * 905 ``months``, ``month_offset``: the first snapshot of each of the last ``months``
      months, a month starting at 00:00 on day ``month_offset`` (1-31; 0 means 1; in a
      shorter month, its last day). The month containing now is the first of them.
    * 906 ``weeks``, ``weekday_offset``: the first snapshot of each of the last ``weeks``
      weeks, a week starting at 00:00 on ``weekday_offset`` (0 Sunday ... 6 Saturday).
      The week containing now is the first of them.
    * 907 / 908 / 909 ``jobs``: the newest snapshot of each calendar day / ISO week
      (Monday to Sunday) / calendar month, for the ``jobs`` most recent days / weeks /
      months that have a snapshot at all (however long ago they are).
    """

    type: RangeType
    _: KW_ONLY
    jobs: int = 0
    newer_than_ns: int = 0
    days: int = 0
    weeks: int = 0
    months: int = 0
    weekday_offset: int = 0
    month_offset: int = 1

    def __post_init__(self) -> None:
        for name in ("jobs", "days", "weeks", "months"):
            if getattr(self, name) < 0:
                raise RetentionPolicyError(f"retention range {self.type}: {name} is negative")
        if not 0 <= self.weekday_offset <= 6:
            raise RetentionPolicyError(
                f"retention range {self.type}: weekday offset must be 0 (Sunday) to 6"
            )
        if not 0 <= self.month_offset <= 31:
            raise RetentionPolicyError(
                f"retention range {self.type}: month offset must be a day of month 1-31"
            )


@dataclass(frozen=True)
class RetentionPolicy:
    """Mode 801 keeps everything; 802 keeps what at least one range keeps."""

    mode: RetentionMode = RetentionMode.KEEP_EVERYTHING
    ranges: tuple[RetentionRange, ...] = ()


@dataclass(frozen=True)
class RetentionRules:
    """Which policy applies to which item of one vault.

    An item's override beats ``vault_default``. When ``known_items`` is given, items not
    in it are unknown items and always use ``vault_default`` (even with an override)."""

    vault_default: RetentionPolicy
    item_overrides: Mapping[str, RetentionPolicy] = field(
        default_factory=lambda: MappingProxyType({})
    )
    known_items: frozenset[str] | None = None

    def policy_for(self, item_id: str) -> RetentionPolicy:
        if self.known_items is not None and item_id not in self.known_items:
            return self.vault_default
        return self.item_overrides.get(item_id, self.vault_default)


@dataclass(frozen=True)
class RetentionPlan:
    """The outcome of evaluating rules: snapshots to keep and to forget, oldest first."""

    keep: tuple[Snapshot, ...]
    forget: tuple[Snapshot, ...]


def plan_retention(
    snapshots: Iterable[Snapshot], rules: RetentionRules, *, now: datetime, tz: tzinfo
) -> RetentionPlan:
    """Split ``snapshots`` into kept and forgotten, group by group.

    ``now`` must be timezone-aware. A snapshot dated after ``now`` (a device clock ahead
    of this one) is always kept: retention only judges the past. Raises
    RetentionPolicyError for a delete-except policy without ranges, which would forget
    every snapshot of the item."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    keep: list[Snapshot] = []
    forget: list[Snapshot] = []
    for item_id, group in _groups(snapshots):
        policy = rules.policy_for(item_id)
        kept = kept_positions([s.start_ns for s in group], policy, now=now, tz=tz)
        for i, s in enumerate(group):
            (keep if i in kept else forget).append(s)
    keep.sort(key=_order)
    forget.sort(key=_order)
    return RetentionPlan(tuple(keep), tuple(forget))


@dataclass(frozen=True)
class RetentionVerdict:
    """One snapshot's fate under a policy: ``reasons`` names every rule that keeps it
    (empty for a snapshot that would be forgotten)."""

    snapshot: Snapshot
    reasons: tuple[str, ...]

    @property
    def kept(self) -> bool:
        return bool(self.reasons)


def explain_retention(
    snapshots: Iterable[Snapshot], rules: RetentionRules, *, now: datetime, tz: tzinfo
) -> list[RetentionVerdict]:
    """What ``plan_retention`` decides, snapshot by snapshot (oldest first), with the
    rules that keep each kept one. Keeps and forgets exactly what ``plan_retention``
    does; raises what it raises."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    out: list[RetentionVerdict] = []
    for item_id, group in _groups(snapshots):
        reasons = kept_reasons(
            [s.start_ns for s in group], rules.policy_for(item_id), now=now, tz=tz
        )
        out.extend(RetentionVerdict(s, tuple(reasons.get(i, ()))) for i, s in enumerate(group))
    out.sort(key=lambda v: _order(v.snapshot))
    return out


def kept_reasons(
    times_ns: Sequence[int], policy: RetentionPolicy, *, now: datetime, tz: tzinfo
) -> dict[int, list[str]]:
    """For each position ``kept_positions`` keeps, the rules that keep it, in the
    policy's order."""
    everything = range(len(times_ns))
    if policy.mode == RetentionMode.KEEP_EVERYTHING:
        return {i: ["the policy keeps everything"] for i in everything}
    kept_positions(times_ns, policy, now=now, tz=tz)  # the same refusals
    now_ns = to_ns(now)
    out: dict[int, list[str]] = {
        i: ["dated after now (a clock ahead): retention only judges the past"]
        for i, t in enumerate(times_ns)
        if t > now_ns
    }
    local_now = now.astimezone(tz)
    local = [from_ns(t, tz) for t in times_ns]
    for r in policy.ranges:
        for i in sorted(_apply(r, times_ns, local, local_now, tz)):
            out.setdefault(i, []).append(describe_range(r))
    return out


def describe_range(r: RetentionRange) -> str:
    """A rule as a person reads it (``keep-last 3``, ``keep-daily 7``…)."""
    if r.type == RangeType.MOST_RECENT_JOBS:
        return f"keep-last {r.jobs}"
    if r.type == RangeType.NEWER_THAN:
        return f"newer than {from_ns(r.newer_than_ns, UTC).isoformat(timespec='seconds')}"
    if r.type == RangeType.JOBS_SINCE:
        parts = [
            f"{n} {unit}"
            for n, unit in ((r.months, "months"), (r.weeks, "weeks"), (r.days, "days"))
            if n
        ]
        return "keep-within " + (" ".join(parts) or "0 days")
    if r.type == RangeType.FIRST_JOB_EACH_DAY:
        return f"first of each day, last {r.days} days"
    if r.type == RangeType.FIRST_JOB_EACH_WEEK:
        return f"first of each week, last {r.weeks} weeks"
    if r.type == RangeType.FIRST_JOB_EACH_MONTH:
        return f"first of each month, last {r.months} months"
    if r.type == RangeType.LAST_BACKUPS_ONE_PER_DAY:
        return f"keep-daily {r.jobs}"
    if r.type == RangeType.LAST_BACKUPS_ONE_PER_WEEK:
        return f"keep-weekly {r.jobs}"
    return f"keep-monthly {r.jobs}"


def _groups(snapshots: Iterable[Snapshot]) -> list[tuple[str, list[Snapshot]]]:
    """``(item id, snapshots oldest first)`` per (item, device): the unit retention
    judges."""
    groups: dict[tuple[str, str], list[Snapshot]] = {}
    for s in snapshots:
        groups.setdefault((s.item_id, s.device_id), []).append(s)
    return [(item_id, sorted(g, key=_order)) for (item_id, _device), g in groups.items()]


def _order(s: Snapshot) -> tuple[int, bytes]:
    return (s.start_ns, s.id)


def kept_positions(
    times_ns: Sequence[int], policy: RetentionPolicy, *, now: datetime, tz: tzinfo
) -> set[int]:
    """Positions in ``times_ns`` (one group's job times, sorted oldest first) that
    ``policy`` keeps."""
    everything = set(range(len(times_ns)))
    if policy.mode == RetentionMode.KEEP_EVERYTHING:
        return everything
    if not policy.ranges:
        raise RetentionPolicyError(
            "a 'delete everything except' policy without ranges would delete every "
            "snapshot; add at least one range"
        )
    now_ns = to_ns(now)
    kept = {i for i, t in enumerate(times_ns) if t > now_ns}
    local_now = now.astimezone(tz)
    local = [from_ns(t, tz) for t in times_ns]
    for r in policy.ranges:
        kept |= _apply(r, times_ns, local, local_now, tz)
    return kept


def _apply(
    r: RetentionRange, times: Sequence[int], local: Sequence[datetime], now: datetime, tz: tzinfo
) -> set[int]:
    n = len(times)
    if r.type == RangeType.MOST_RECENT_JOBS:
        return set(range(max(0, n - r.jobs), n))
    if r.type == RangeType.NEWER_THAN:
        return {i for i, t in enumerate(times) if t > r.newer_than_ns}
    if r.type == RangeType.JOBS_SINCE:
        wall = _months_back(now.replace(tzinfo=None), r.months)
        wall -= timedelta(days=7 * r.weeks + r.days)
        cutoff = to_ns(wall.replace(tzinfo=tz))
        return {i for i, t in enumerate(times) if t >= cutoff}
    if r.type == RangeType.FIRST_JOB_EACH_DAY:
        today = now.date()
        oldest_day = today - timedelta(days=r.days - 1)
        return _first_per_period(local, lambda d: d, oldest_day, today, r.days)
    if r.type == RangeType.FIRST_JOB_EACH_WEEK:

        def week(d: date) -> date:
            return _week_start(d, r.weekday_offset)

        current = week(now.date())
        oldest = current - timedelta(weeks=r.weeks - 1)
        return _first_per_period(local, week, oldest, current, r.weeks)
    if r.type == RangeType.FIRST_JOB_EACH_MONTH:

        def month(d: date) -> int:
            return _month_period(d, r.month_offset)

        current_month = month(now.date())
        return _first_per_period(
            local, month, current_month - r.months + 1, current_month, r.months
        )
    if r.type == RangeType.LAST_BACKUPS_ONE_PER_DAY:
        return _newest_per_period(local, lambda d: d, r.jobs)
    if r.type == RangeType.LAST_BACKUPS_ONE_PER_WEEK:
        return _newest_per_period(local, lambda d: d - timedelta(days=d.weekday()), r.jobs)
    if r.type == RangeType.LAST_BACKUPS_ONE_PER_MONTH:
        return _newest_per_period(local, lambda d: d.year * 12 + d.month - 1, r.jobs)
    raise RetentionPolicyError(f"unknown retention range type {r.type}")


def _first_per_period(
    local: Sequence[datetime], period: Callable[[date], _K], oldest: _K, newest: _K, count: int
) -> set[int]:
    """The first snapshot of each period whose key lies in ``[oldest, newest]``."""
    if count <= 0:
        return set()
    seen: set[_K] = set()
    out = set()
    for i, t in enumerate(local):  # oldest first: the first hit of a period is its first job
        key = period(t.date())
        if oldest <= key <= newest and key not in seen:
            seen.add(key)
            out.add(i)
    return out


def _newest_per_period(
    local: Sequence[datetime], period: Callable[[date], Hashable], count: int
) -> set[int]:
    seen: set[Hashable] = set()
    out = set()
    for i in range(len(local) - 1, -1, -1):  # newest first
        if len(seen) >= count:
            break
        key = period(local[i].date())
        if key not in seen:
            seen.add(key)
            out.add(i)
    return out


def _week_start(d: date, weekday_offset: int) -> date:
    sunday_based = d.isoweekday() % 7  # 0 Sunday ... 6 Saturday
    return d - timedelta(days=(sunday_based - weekday_offset) % 7)


def _month_period(d: date, month_offset: int) -> int:
    """Months since year 0 of the month period (starting on ``month_offset``) holding d."""
    index = d.year * 12 + d.month - 1
    start_day = min(max(month_offset, 1), calendar.monthrange(d.year, d.month)[1])
    return index if d.day >= start_day else index - 1


def _months_back(wall: datetime, months: int) -> datetime:
    index = wall.year * 12 + wall.month - 1 - months
    year, month = divmod(index, 12)
    day = min(wall.day, calendar.monthrange(year, month + 1)[1])
    return wall.replace(year=year, month=month + 1, day=day)


def to_ns(dt: datetime) -> int:
    """An aware datetime as integer nanoseconds since the epoch (exact)."""
    return (dt - _EPOCH) // timedelta(microseconds=1) * 1000


def from_ns(t: int, tz: tzinfo) -> datetime:
    """Nanoseconds since the epoch as an aware datetime in ``tz``."""
    return (_EPOCH + timedelta(microseconds=t // 1000)).astimezone(tz)
