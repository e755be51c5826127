"""Wall-clock times in a timezone, resolved to instants, with DST handled one way everywhere.

* A wall time inside a spring-forward gap resolves to the end of the gap (the first valid
  local time after it): 02:30 on a day Berlin jumps from 02:00 to 03:00 is 03:00.
* A wall time that occurs twice on a fall-back day resolves to its first occurrence.

All instants returned are aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def to_utc(moment: datetime) -> datetime:
    """``moment`` as aware UTC; a naive datetime is a programming error."""
    if moment.utcoffset() is None:
        raise ValueError(f"{moment!r} is naive; the scheduler needs timezone-aware times")
    return moment.astimezone(UTC)


def _naive_wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def occurrences(day: date, at: time, tz: ZoneInfo) -> list[datetime]:
    """Every instant whose local wall time is ``day`` ``at``: none in a gap, two in an
    overlap, one otherwise. Ascending."""
    wall = datetime.combine(day, at)
    found: set[datetime] = set()
    for fold in (0, 1):
        instant = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if _naive_wall(instant, tz) == wall:
            found.add(instant)
    return sorted(found)


def resolve(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The one instant a planned wall time stands for (see the module rules)."""
    found = occurrences(day, at, tz)
    if found:
        return found[0]
    wall = datetime.combine(day, at)
    # In a gap, fold=1 applies the offset after the jump (an earlier instant) and fold=0
    # the one before it (a later instant); the transition lies between them.
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    return first_with_offset_of(low, high, tz)


def first_with_offset_of(low: datetime, high: datetime, tz: ZoneInfo) -> datetime:
    """The earliest instant in (low, high] whose UTC offset is that of ``high``, to the
    second. Assumes at most one offset change between the two."""
    target = high.astimezone(tz).utcoffset()
    lo, hi = int(low.timestamp()), int(high.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of the local calendar day ``day``."""
    return resolve(day, time(0, 0), tz)


def seconds_into_day(instant: datetime, tz: ZoneInfo) -> float:
    """Local wall-clock seconds since midnight (what a time window compares against)."""
    local = instant.astimezone(tz)
    return local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6


ONE_DAY = timedelta(days=1)
