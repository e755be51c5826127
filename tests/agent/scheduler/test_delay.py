"""Random delay: deterministic per (schedule, planned time), bounded, inside the window."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from comet.agent.scheduler import (
    MAX_RANDOM_DELAY_SECONDS,
    Frequency,
    Scheduler,
    ScheduleSpec,
    next_run,
)
from tests.agent.scheduler.specs import BERLIN, make_spec, utc

START = utc(2024, 1, 1)


def delays(spec: ScheduleSpec, count: int) -> list[timedelta]:
    """The delay of each of ``count`` daily runs after START (slot at spec.hour:00 UTC)."""
    found: list[timedelta] = []
    after = START
    for _ in range(count):
        run = next_run(spec, after, BERLIN)
        assert run is not None
        slot = run.astimezone(BERLIN).replace(hour=spec.hour, minute=0, second=0)
        found.append(run - slot)
        after = run
    return found


@pytest.mark.parametrize(
    ("configured", "cap"),
    [
        (600, 600),
        (3 * 3600, 3 * 3600),
        (MAX_RANDOM_DELAY_SECONDS, MAX_RANDOM_DELAY_SECONDS),
        (24 * 3600, MAX_RANDOM_DELAY_SECONDS),
    ],
    ids=["10min", "3h", "5h", "24h-is-capped-at-5h"],
)
def test_delay_is_spread_below_the_cap(configured: int, cap: int) -> None:
    spec = make_spec(Frequency.DAILY, hour=1, random_delay_seconds=configured)
    found = delays(spec, 200)
    assert all(timedelta(0) <= d < timedelta(seconds=cap) for d in found)
    assert max(found) > timedelta(seconds=cap * 0.8)
    assert len(set(found)) > 150


def test_delay_is_deterministic_across_restarts() -> None:
    spec = make_spec(Frequency.DAILY, hour=1, random_delay_seconds=7200)
    assert delays(spec, 30) == delays(spec, 30)
    rebuilt = make_spec(Frequency.DAILY, hour=1, random_delay_seconds=7200)
    assert delays(rebuilt, 30) == delays(spec, 30)
    # Two agents (before and after a restart) see the same due run at the same time.
    first = Scheduler([spec], BERLIN, {"s1": START})
    second = Scheduler([rebuilt], BERLIN, {"s1": START})
    assert first.next_wakeup(START) == second.next_wakeup(START)


def test_delay_differs_between_schedules() -> None:
    one = make_spec(Frequency.DAILY, hour=1, random_delay_seconds=7200)
    two = make_spec(Frequency.DAILY, hour=1, random_delay_seconds=7200, schedule_id="s2")
    assert delays(one, 20) != delays(two, 20)


def test_delay_keeps_the_run_inside_the_window() -> None:
    spec = make_spec(
        Frequency.DAILY,
        hour=1,
        window_start_minute=60,
        window_end_minute=90,
        random_delay_seconds=4 * 3600,
    )
    after = START
    for _ in range(100):
        run = next_run(spec, after, BERLIN)
        assert run is not None
        wall = run.astimezone(BERLIN)
        assert (wall.hour, wall.minute) >= (1, 0)
        assert (wall.hour, wall.minute) < (1, 30)
        after = run


def test_delayed_hourly_runs_each_happen_once_in_order() -> None:
    # A delay longer than the period may reorder runs; each still happens exactly once.
    spec = make_spec(Frequency.HOURLY, minute=0, random_delay_seconds=3 * 3600)
    after = START
    seen: list[datetime] = []
    for _ in range(48):
        run = next_run(spec, after, BERLIN)
        assert run is not None and run > after
        seen.append(run)
        after = run
    assert len(set(seen)) == 48
    span = seen[-1] - seen[0]
    assert timedelta(hours=40) < span < timedelta(hours=53)
