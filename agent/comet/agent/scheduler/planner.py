"""``next_run`` and ``previous_run``: when a schedule's runs are planned.

A run's planned time is computed in three steps: the nominal slot (``slots``), pushed to
the window's next opening if it falls outside the window, then delayed by the run's
random delay, which is kept short enough that the run still starts inside the window.
Slots pushed to the same opening become one run. Because windows and delays move runs
later by a bounded amount, the search looks that far back and takes the earliest (or
latest) resulting time, so the answer is exact even when a delay reorders two runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from comet.agent.scheduler.delay import random_delay
from comet.agent.scheduler.frequency import Frequency
from comet.agent.scheduler.slots import slots_from, slots_until
from comet.agent.scheduler.spec import ScheduleSpec
from comet.agent.scheduler.wallclock import to_utc
from comet.agent.scheduler.window import TimeWindow


def next_run(spec: ScheduleSpec, after: datetime, tz: ZoneInfo) -> datetime | None:
    """The first planned run strictly after ``after`` (aware UTC, random delay included),
    or None if there is none (a ONCE in the past, a disabled schedule)."""
    after = to_utc(after)
    if not spec.enabled:
        return None
    if spec.frequency is Frequency.ONCE:
        once = _once(spec)
        return once if once > after else None
    window = _window(spec)
    best: datetime | None = None
    last_opening: datetime | None = None
    for slot in slots_from(spec, tz, after - _reach(spec, window)):
        if best is not None and slot >= best:
            break  # a run is never earlier than its slot
        if last_opening is not None and slot < last_opening:
            continue  # still in the closed span already pushed to ``last_opening``
        run, opening = _plan(spec, slot, tz, window)
        if opening > slot:
            last_opening = opening
        if run > after and (best is None or run < best):
            best = run
    return best


def previous_run(spec: ScheduleSpec, until: datetime, tz: ZoneInfo) -> datetime | None:
    """The last planned run at or before ``until``, or None if there is none."""
    until = to_utc(until)
    if not spec.enabled:
        return None
    if spec.frequency is Frequency.ONCE:
        once = _once(spec)
        return once if once <= until else None
    window = _window(spec)
    reach = _reach(spec, window)
    best: datetime | None = None
    for slot in slots_until(spec, tz, until):
        if best is not None and slot + reach < best:
            break
        run, _ = _plan(spec, slot, tz, window)
        if run <= until and (best is None or run > best):
            best = run
    return best


def _once(spec: ScheduleSpec) -> datetime:
    assert spec.once_at is not None  # validated by ScheduleSpec
    return spec.once_at.astimezone(UTC)


def _window(spec: ScheduleSpec) -> TimeWindow | None:
    if spec.window_start_minute is None or spec.window_end_minute is None:
        return None
    return TimeWindow(spec.window_start_minute, spec.window_end_minute)


def _reach(spec: ScheduleSpec, window: TimeWindow | None) -> timedelta:
    """The furthest after its slot a run can be planned."""
    push = window.longest_push if window is not None else timedelta(0)
    return push + timedelta(seconds=spec.delay_cap_seconds)


def _plan(
    spec: ScheduleSpec, slot: datetime, tz: ZoneInfo, window: TimeWindow | None
) -> tuple[datetime, datetime]:
    """(the run's planned time, the slot after the window push)."""
    ceiling = timedelta(seconds=spec.delay_cap_seconds)
    if window is None:
        opening = slot
    else:
        opening = window.open_at_or_after(slot, tz)
        ceiling = min(ceiling, window.open_for(opening, tz))
    return opening + random_delay(spec.schedule_id, opening, ceiling), opening
