"""When a schedule was due to run, for telling missed runs apart from real ones.

Rules (shared with the agent's scheduler):
- DAILY: at hour:minute local time, every day, or only on ``weekdays`` (0 = Monday)
  when any are given.
- HOURLY: at ``minute`` past every local hour (weekday filter and time window apply).
- WEEKLY: at hour:minute local time on each of ``weekdays`` (required).
- MONTHLY: at hour:minute local time on ``day_of_month`` (1-31), or on the last day
  of a shorter month; the weekday filter and time window apply.
- PERIODIC: at every instant t with (t - offset_seconds) divisible by every_seconds,
  counted in seconds since the Unix epoch (so independent of the timezone); the
  time window and weekday filter apply in local time.
- ONCE: at ``once_at``; no window or weekday filter.
Every frequency the agent supports is checked for missed runs.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ONCE = 8010
DAILY = 8011
HOURLY = 8012
WEEKLY = 8013
MONTHLY = 8014
PERIODIC = 8015
CHECKED = frozenset({ONCE, DAILY, HOURLY, WEEKLY, MONTHLY, PERIODIC})
# Never enumerate more than this many runs per schedule and sweep.
MAX_RUNS = 500


@dataclass(frozen=True)
class ScheduleTimes:
    frequency: int
    hour: int = 0
    minute: int = 0
    weekdays: tuple[int, ...] = ()
    every_seconds: int = 0
    offset_seconds: int = 0
    window: tuple[int, int] | None = None  # minutes after local midnight, inclusive start
    day_of_month: int = 1
    once_at: datetime | None = None

    @classmethod
    def from_json(cls, schedule: dict[str, Any]) -> ScheduleTimes:
        window = None
        if schedule.get("has_window"):
            window = (
                int(schedule.get("window_start_minute", 0)),
                int(schedule.get("window_end_minute", 0)),
            )
        return cls(
            frequency=int(schedule.get("frequency", 0)),
            hour=int(schedule.get("hour", 0)),
            minute=int(schedule.get("minute", 0)),
            weekdays=tuple(int(d) for d in schedule.get("weekdays", [])),
            every_seconds=int(schedule.get("every_seconds", 0)),
            offset_seconds=int(schedule.get("offset_seconds", 0)),
            window=window,
            day_of_month=int(schedule.get("day_of_month", 1) or 1),
            once_at=_parse_time(schedule.get("once_at")),
        )

    def _allowed(self, local: datetime) -> bool:
        if self.weekdays and local.weekday() not in self.weekdays:
            return False
        if self.window is not None:
            start, end = self.window
            minute = local.hour * 60 + local.minute
            inside = start <= minute < end if start <= end else minute >= start or minute < end
            if not inside:
                return False
        return True

    def runs_between(self, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
        """Due times t with start < t <= end, in UTC, oldest first."""
        if self.frequency == ONCE:
            once = self.once_at
            return [once] if once is not None and start < once <= end else []
        if self.frequency == WEEKLY and not self.weekdays:
            return []  # the agent refuses such a schedule: it never runs
        if self.frequency == PERIODIC:
            candidates = self._periodic(start, end)
        elif self.frequency in (DAILY, HOURLY, WEEKLY):
            candidates = self._wall_clock(tz, start, end)
        elif self.frequency == MONTHLY:
            candidates = self._monthly(tz, start, end)
        else:
            return []
        out = sorted(
            {t for t in candidates if start < t <= end and self._allowed(t.astimezone(tz))}
        )
        return out[-MAX_RUNS:]

    def _periodic(self, start: datetime, end: datetime) -> list[datetime]:
        every = self.every_seconds
        if every <= 0:
            return []
        first = int(start.timestamp()) - self.offset_seconds
        k = first // every + 1
        last = int(end.timestamp()) - self.offset_seconds
        k = max(k, last // every - MAX_RUNS)
        out = []
        while k * every <= last:
            out.append(datetime.fromtimestamp(k * every + self.offset_seconds, UTC))
            k += 1
        return out

    def _monthly(self, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
        first = start.astimezone(tz).date().replace(day=1)
        year, month = first.year, first.month
        out: list[datetime] = []
        while len(out) < MAX_RUNS:
            day = min(max(self.day_of_month, 1), calendar.monthrange(year, month)[1])
            when = (
                datetime.combine(date(year, month, day), datetime.min.time())
                .replace(hour=self.hour % 24, minute=self.minute % 60, tzinfo=tz)
                .astimezone(UTC)
            )
            if when > end:
                break
            out.append(when)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out

    def _wall_clock(self, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
        step = timedelta(hours=1) if self.frequency == HOURLY else timedelta(days=1)
        local = start.astimezone(tz).replace(minute=self.minute % 60, second=0, microsecond=0)
        if self.frequency != HOURLY:
            local = local.replace(hour=self.hour % 24)
        local -= step
        out: list[datetime] = []
        # Wall-clock arithmetic: 02:30 stays 02:30 across a DST change.
        naive = local.replace(tzinfo=None)
        while len(out) < MAX_RUNS * 2:
            when = naive.replace(tzinfo=tz).astimezone(UTC)
            if when > end:
                break
            out.append(when)
            naive += step
        return out


def zone(name: str) -> ZoneInfo:
    """The named IANA timezone, or UTC for an empty or unknown name."""
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.utcoffset() is not None else parsed.replace(tzinfo=UTC)
