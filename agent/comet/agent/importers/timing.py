"""Mapping foreign schedule expressions (cron, systemd OnCalendar) onto Comet timings.

Only expressions that run once a day, hour, week (on fixed weekdays) or month at one fixed
time map; anything else (every 15 minutes, several hours a day, a range of months) returns
None with the reason, and the planner proposes the default daily 02:00 instead.
"""

from __future__ import annotations

from comet.agent.importers.plan import ScheduleTiming
from comet.agent.scheduler.frequency import Frequency

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = Comet weekday
_CRON_MACROS = {
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}


class _Unmappable(Exception):
    pass


def from_cron(expression: str) -> tuple[ScheduleTiming | None, str]:
    """A five-field cron expression (or ``@daily``-style macro) as a timing, or None and
    why it does not map."""
    text = _CRON_MACROS.get(expression.strip().lower(), expression.strip())
    fields = text.split()
    if len(fields) != 5:
        return None, f"cron expression {expression!r} does not have five fields"
    minute, hour, dom, month, dow = fields
    try:
        if month != "*":
            raise _Unmappable("it runs only in some months")
        m = _single(minute, 0, 59, "minute")
        if hour == "*":
            if dom != "*" or dow != "*":
                raise _Unmappable("an hourly run limited to some days")
            return ScheduleTiming(Frequency.HOURLY, minute=m), ""
        h = _single(hour, 0, 23, "hour")
        if dom == "*" and dow == "*":
            return ScheduleTiming(Frequency.DAILY, hour=h, minute=m), ""
        if dom == "*":
            days = _cron_weekdays(dow)
            if len(days) == 7:
                return ScheduleTiming(Frequency.DAILY, hour=h, minute=m), ""
            return ScheduleTiming(Frequency.WEEKLY, hour=h, minute=m, weekdays=days), ""
        if dow == "*":
            d = _single(dom, 1, 31, "day of month")
            return ScheduleTiming(Frequency.MONTHLY, hour=h, minute=m, day_of_month=d), ""
        raise _Unmappable("it limits both the day of month and the weekday")
    except _Unmappable as e:
        return None, f"cron expression {expression!r} does not map onto a Comet schedule: {e}"


def from_on_calendar(expression: str) -> tuple[ScheduleTiming | None, str]:
    """A systemd OnCalendar expression as used by resticprofile (``daily``,
    ``Mon..Fri *-*-* 03:15``, ``*-*-15 02:00``, ``*:30``, ``04:00``...)."""
    text = " ".join(expression.split())
    keyword = {
        "hourly": ScheduleTiming(Frequency.HOURLY, minute=0),
        "daily": ScheduleTiming(Frequency.DAILY),
        "weekly": ScheduleTiming(Frequency.WEEKLY, weekdays=frozenset({0})),
        "monthly": ScheduleTiming(Frequency.MONTHLY, day_of_month=1),
    }.get(text.lower())
    if keyword is not None:
        return keyword, ""
    try:
        return _on_calendar_fields(text.split(" ")), ""
    except _Unmappable as e:
        return None, f"schedule {expression!r} does not map onto a Comet schedule: {e}"


def _on_calendar_fields(words: list[str]) -> ScheduleTiming:
    weekdays: frozenset[int] = frozenset()
    if words and words[0][:1].isalpha():
        weekdays = _named_weekdays(words.pop(0), separator="..")
    if not words or len(words) > 2:
        raise _Unmappable("expected [weekdays] [date] time")
    date = words[0] if len(words) == 2 else "*-*-*"
    time = words[-1]
    day_of_month = _on_calendar_day(date)
    parts = time.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("0", "00")):
        raise _Unmappable("the time must be HH:MM")
    minute = _single(parts[1], 0, 59, "minute")
    if parts[0] == "*":
        if weekdays or day_of_month:
            raise _Unmappable("an hourly run limited to some days")
        return ScheduleTiming(Frequency.HOURLY, minute=minute)
    hour = _single(parts[0], 0, 23, "hour")
    if day_of_month:
        if weekdays:
            raise _Unmappable("it limits both the day of month and the weekday")
        return ScheduleTiming(
            Frequency.MONTHLY, hour=hour, minute=minute, day_of_month=day_of_month
        )
    if weekdays and len(weekdays) < 7:
        return ScheduleTiming(Frequency.WEEKLY, hour=hour, minute=minute, weekdays=weekdays)
    return ScheduleTiming(Frequency.DAILY, hour=hour, minute=minute)


def _on_calendar_day(date: str) -> int:
    """0 for every day, else the fixed day of month of a ``*-*-DD`` date."""
    parts = date.split("-")
    if len(parts) != 3 or parts[0] != "*" or parts[1] != "*":
        raise _Unmappable("only every-day or *-*-DD dates map")
    return 0 if parts[2] == "*" else _single(parts[2], 1, 31, "day of month")


def _single(field: str, low: int, high: int, what: str) -> int:
    if not field.isdigit():
        raise _Unmappable(f"the {what} is not one fixed value")
    value = int(field)
    if not low <= value <= high:
        raise _Unmappable(f"the {what} {value} is out of range")
    return value


def _cron_weekdays(field: str) -> frozenset[int]:
    """Cron weekdays (0 or 7 Sunday, 1 Monday; names; lists and ranges) as Comet weekdays
    (0 Monday ... 6 Sunday)."""
    if any(c.isalpha() for c in field):
        return _named_weekdays(field, separator="-")
    days: set[int] = set()
    for part in field.split(","):
        low, _, high = part.partition("-")
        first = _single(low, 0, 7, "weekday")
        last = _single(high, 0, 7, "weekday") if high else first
        if last < first:
            raise _Unmappable(f"weekday range {part!r} runs backwards")
        days.update((d - 1) % 7 for d in range(first, last + 1))
    return frozenset(days)


def _named_weekdays(field: str, *, separator: str) -> frozenset[int]:
    days: set[int] = set()
    for part in field.lower().split(","):
        low, _, high = part.partition(separator)
        first = _day_index(low)
        last = _day_index(high) if high else first
        if last < first:
            raise _Unmappable(f"weekday range {part!r} runs backwards")
        days.update(range(first, last + 1))
    return frozenset(days)


def _day_index(name: str) -> int:
    key = name.strip()[:3]
    if key not in _DAY_NAMES:
        raise _Unmappable(f"{name!r} is not a weekday")
    return _DAY_NAMES.index(key)
