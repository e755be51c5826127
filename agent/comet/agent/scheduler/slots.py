"""Nominal slots: the planned times of a schedule before its window and random delay.

Slots are produced per local calendar day (so the weekday filter can drop whole days) in
order, forwards or backwards, within a bounded horizon so that a schedule that can never
run ends the search instead of looping.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from comet.agent.scheduler.frequency import Frequency
from comet.agent.scheduler.spec import ScheduleSpec
from comet.agent.scheduler.wallclock import ONE_DAY, day_start, local_date, occurrences, resolve

HORIZON_DAYS = 4 * 366
"""How far the search goes looking for a slot before deciding there is none."""


def slots_from(spec: ScheduleSpec, tz: ZoneInfo, start: datetime) -> Iterator[datetime]:
    """Slots at or after ``start``, ascending."""
    first_day = local_date(start, tz) - ONE_DAY
    for day in _days(spec, first_day, step=1):
        for slot in _slots_on(spec, day, tz):
            if slot >= start:
                yield slot


def slots_until(spec: ScheduleSpec, tz: ZoneInfo, end: datetime) -> Iterator[datetime]:
    """Slots at or before ``end``, descending."""
    last_day = local_date(end, tz) + ONE_DAY
    for day in _days(spec, last_day, step=-1):
        for slot in reversed(_slots_on(spec, day, tz)):
            if slot <= end:
                yield slot


def _days(spec: ScheduleSpec, origin: date, *, step: int) -> Iterator[date]:
    if spec.frequency is Frequency.MONTHLY:
        year, month = origin.year, origin.month
        for _ in range(HORIZON_DAYS // 28):
            yield date(year, month, _month_day(spec, year, month))
            month += step
            if month == 0:
                year, month = year - 1, 12
            elif month == 13:
                year, month = year + 1, 1
        return
    for offset in range(HORIZON_DAYS):
        yield origin + timedelta(days=offset * step)


def _month_day(spec: ScheduleSpec, year: int, month: int) -> int:
    return min(spec.day_of_month, calendar.monthrange(year, month)[1])


def _day_allowed(spec: ScheduleSpec, day: date) -> bool:
    # For WEEKLY the weekdays are the run days; for the others an optional filter.
    return not spec.weekdays or day.weekday() in spec.weekdays


def _slots_on(spec: ScheduleSpec, day: date, tz: ZoneInfo) -> list[datetime]:
    if not _day_allowed(spec, day):
        return []
    freq = spec.frequency
    if freq in (Frequency.DAILY, Frequency.WEEKLY, Frequency.MONTHLY):
        return [resolve(day, time(spec.hour, spec.minute), tz)]
    if freq is Frequency.HOURLY:
        # Every instant whose local minute is ``minute``: both passes through a repeated
        # hour run, a skipped hour has nothing to run, so runs stay 60 minutes apart.
        found: list[datetime] = []
        for hour in range(24):
            found.extend(occurrences(day, time(hour, spec.minute), tz))
        return found
    if freq is Frequency.PERIODIC:
        return _periodic_on(spec, day, tz)
    return []


def _periodic_on(spec: ScheduleSpec, day: date, tz: ZoneInfo) -> list[datetime]:
    begin = int(day_start(day, tz).timestamp())
    end = int(day_start(day + ONE_DAY, tz).timestamp())
    every, offset = spec.every_seconds, spec.offset_seconds % spec.every_seconds
    first = begin + (offset - begin) % every
    return [datetime.fromtimestamp(t, UTC) for t in range(first, end, every)]
