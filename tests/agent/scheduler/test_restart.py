"""After an agent restart: the saved last-run times survive even though the agent
creates its scheduler before the profile's schedules are loaded, so a run that fell
while the agent was down is run late within the grace window, or recorded as Missed.
The scheduler's clock is driven by the test (the agent's own sequence of calls)."""

from __future__ import annotations

from datetime import datetime, timedelta

from comet.agent.scheduler import Frequency, Scheduler, TriggerKind
from tests.agent.scheduler.specs import BERLIN, make_spec, utc

DAILY = make_spec(Frequency.DAILY, hour=10, schedule_id="daily")  # 08:00 UTC in May
YESTERDAY = utc(2024, 5, 1, 8)
TODAY = utc(2024, 5, 2, 8)


def restarted(saved: dict[str, datetime], now: datetime) -> Scheduler:
    """What the agent does on start: an empty scheduler with the saved times, then the
    profile's schedules once they are loaded."""
    scheduler = Scheduler([], BERLIN, saved)
    assert scheduler.last_run == saved  # kept even before the schedules are known
    scheduler.update([DAILY], now=now)
    return scheduler


def kinds(scheduler: Scheduler, now: datetime) -> list[tuple[TriggerKind, datetime]]:
    return [(t.kind, t.planned) for t in scheduler.due(now, booting=True)]


def test_down_over_the_schedule_time_for_2_5_minutes_runs_it_late() -> None:
    now = TODAY + timedelta(minutes=2, seconds=30)
    scheduler = restarted({"daily": YESTERDAY}, now)
    assert kinds(scheduler, now) == [(TriggerKind.RUN, TODAY)]


def test_down_over_the_schedule_time_for_12_minutes_records_it_missed() -> None:
    now = TODAY + timedelta(minutes=12)
    scheduler = restarted({"daily": YESTERDAY}, now)
    assert kinds(scheduler, now) == [(TriggerKind.MISSED, TODAY)]


def test_a_shorter_grace_window_is_honoured() -> None:
    now = TODAY + timedelta(minutes=2, seconds=30)
    scheduler = Scheduler([], BERLIN, {"daily": YESTERDAY}, grace=timedelta(minutes=1))
    scheduler.update([DAILY], now=now)
    assert kinds(scheduler, now) == [(TriggerKind.MISSED, TODAY)]


def test_saved_times_are_not_reset_to_the_boot_time() -> None:
    now = TODAY - timedelta(hours=1)  # restarted before today's run: nothing due
    scheduler = restarted({"daily": YESTERDAY}, now)
    assert scheduler.due(now, booting=True) == []
    assert scheduler.last_run == {"daily": YESTERDAY}


def test_a_schedule_seen_for_the_first_time_still_starts_from_now() -> None:
    now = TODAY + timedelta(minutes=2)
    scheduler = restarted({}, now)
    assert scheduler.due(now, booting=True) == []
    assert scheduler.last_run == {"daily": now}


def test_a_saved_time_waits_for_its_schedule_across_profile_updates() -> None:
    now = TODAY + timedelta(minutes=2)
    scheduler = Scheduler([], BERLIN, {"daily": YESTERDAY})
    scheduler.update([], now=now)  # the cached profile was still empty
    scheduler.update([DAILY], now=now)
    assert kinds(scheduler, now) == [(TriggerKind.RUN, TODAY)]
