"""Scheduler: due runs, missed runs and catch-up, boot runs, retries, update, wakeups."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from comet.agent.scheduler import (
    Frequency,
    ScheduleError,
    Scheduler,
    ScheduleSpec,
    Trigger,
    TriggerKind,
    next_run,
)
from tests.agent.scheduler.specs import BERLIN, make_spec, utc

RUN, MISSED, BOOT, RETRY = TriggerKind.RUN, TriggerKind.MISSED, TriggerKind.BOOT, TriggerKind.RETRY
T0 = utc(2024, 5, 1, 8, 30)  # Wednesday; Berlin 10:30
HOURLY = make_spec(Frequency.HOURLY, minute=0, schedule_id="hourly")


def running(
    specs: list[ScheduleSpec], last_run: dict[str, datetime], at: datetime = T0
) -> Scheduler:
    """A scheduler that has already been checked once at ``at`` (the agent is up)."""
    scheduler = Scheduler(specs, BERLIN, last_run)
    assert scheduler.due(at) == []
    return scheduler


def summary(triggers: list[Trigger]) -> list[tuple[str, TriggerKind, datetime, datetime]]:
    return [(t.schedule_id, t.kind, t.planned, t.first_planned) for t in triggers]


def handle(scheduler: Scheduler, triggers: list[Trigger]) -> None:
    for trigger in triggers:
        scheduler.mark_handled(trigger.schedule_id, trigger.planned)


def test_on_time_run_fires_once() -> None:
    scheduler = running([HOURLY], {"hourly": T0})
    assert scheduler.due(utc(2024, 5, 1, 8, 59)) == []
    triggers = scheduler.due(utc(2024, 5, 1, 9, 0, 20))
    assert summary(triggers) == [("hourly", RUN, utc(2024, 5, 1, 9), utc(2024, 5, 1, 9))]
    handle(scheduler, triggers)
    assert scheduler.due(utc(2024, 5, 1, 9, 2)) == []
    assert scheduler.last_run == {"hourly": utc(2024, 5, 1, 9)}


def test_unhandled_trigger_is_reported_again() -> None:
    scheduler = running([HOURLY], {"hourly": T0})
    first = scheduler.due(utc(2024, 5, 1, 9, 0, 5))
    assert scheduler.due(utc(2024, 5, 1, 9, 0, 30)) == first


def test_trigger_carries_job_options() -> None:
    spec = make_spec(Frequency.DAILY, hour=11, skip_if_running=True, stop_after_seconds=3600)
    scheduler = running([spec], {"s1": T0})
    (trigger,) = scheduler.due(utc(2024, 5, 1, 9, 0, 1))
    assert trigger == Trigger(
        schedule_id="s1",
        item_id="item-1",
        vault_id="vault-1",
        planned=utc(2024, 5, 1, 9),
        kind=RUN,
        skip_if_running=True,
        stop_after_seconds=3600,
        first_planned=utc(2024, 5, 1, 9),
    )
    assert not trigger.folded


def test_late_run_while_running_still_runs() -> None:
    scheduler = running([HOURLY], {"hourly": T0})
    triggers = scheduler.due(utc(2024, 5, 1, 9, 40))  # 40 min late, agent was up
    assert summary(triggers) == [("hourly", RUN, utc(2024, 5, 1, 9), utc(2024, 5, 1, 9))]


def test_very_late_check_while_running_folds_into_one_run() -> None:
    scheduler = running([HOURLY], {"hourly": T0})
    triggers = scheduler.due(utc(2024, 5, 1, 14, 10))
    assert summary(triggers) == [("hourly", RUN, utc(2024, 5, 1, 14), utc(2024, 5, 1, 9))]
    assert triggers[0].folded


SLEEP_START = utc(2024, 5, 1, 20, 30)
WAKE = utc(2024, 5, 4, 20, 30)  # three days later


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            make_spec(Frequency.HOURLY, minute=0, run_at_boot_if_missed=True),
            [(RUN, utc(2024, 5, 4, 20), utc(2024, 5, 1, 21))],
        ),
        (
            make_spec(Frequency.HOURLY, minute=0),
            [(MISSED, utc(2024, 5, 4, 20), utc(2024, 5, 1, 21))],
        ),
        (
            make_spec(Frequency.DAILY, hour=3, run_at_boot_if_missed=True),
            [(RUN, utc(2024, 5, 4, 1), utc(2024, 5, 2, 1))],
        ),
        (
            make_spec(Frequency.DAILY, hour=3),
            [(MISSED, utc(2024, 5, 4, 1), utc(2024, 5, 2, 1))],
        ),
        (
            make_spec(Frequency.WEEKLY, hour=3, weekdays={4}),  # Friday
            [(MISSED, utc(2024, 5, 3, 1), utc(2024, 5, 3, 1))],
        ),
        (make_spec(Frequency.WEEKLY, hour=3, weekdays={0}), []),
    ],
    ids=[
        "hourly-catch-up",
        "hourly-missed",
        "daily-catch-up",
        "daily-missed",
        "weekly-missed",
        "weekly-nothing-missed",
    ],
)
@pytest.mark.parametrize("how", ["resumed", "booting"])
def test_three_day_sleep_gives_one_trigger_never_a_burst(
    spec: ScheduleSpec, expected: list[tuple[TriggerKind, datetime, datetime]], how: str
) -> None:
    scheduler = running([spec], {"s1": SLEEP_START})
    triggers = scheduler.due(WAKE, resumed=how == "resumed", booting=how == "booting")
    assert [(t.kind, t.planned, t.first_planned) for t in triggers] == expected
    handle(scheduler, triggers)
    # Checking every minute afterwards yields nothing until the next planned run.
    upcoming = next_run(spec, WAKE, BERLIN)
    assert upcoming is not None
    assert scheduler.next_wakeup(WAKE + timedelta(seconds=1)) == upcoming
    checks = [WAKE + timedelta(minutes=m) for m in range(1, 180)]
    checks += [upcoming - timedelta(minutes=m) for m in (30, 1)]
    for now in checks:
        if now < upcoming:
            assert scheduler.due(now) == []


def test_wake_just_after_a_run_runs_it_and_reports_the_rest_missed() -> None:
    spec = make_spec(Frequency.HOURLY, minute=0)
    scheduler = running([spec], {"s1": SLEEP_START})
    triggers = scheduler.due(utc(2024, 5, 4, 20, 5), resumed=True)
    assert [(t.kind, t.planned, t.first_planned) for t in triggers] == [
        (MISSED, utc(2024, 5, 4, 19), utc(2024, 5, 1, 21)),
        (RUN, utc(2024, 5, 4, 20), utc(2024, 5, 4, 20)),
    ]


def test_run_less_than_grace_late_after_boot_still_runs() -> None:
    spec = make_spec(Frequency.DAILY, hour=10)
    scheduler = Scheduler([spec], BERLIN, {"s1": utc(2024, 4, 30, 8)})
    triggers = scheduler.due(utc(2024, 5, 1, 8, 9), booting=True)
    assert summary(triggers) == [("s1", RUN, utc(2024, 5, 1, 8), utc(2024, 5, 1, 8))]


def test_first_check_after_construction_counts_as_downtime() -> None:
    scheduler = Scheduler([make_spec(Frequency.DAILY, hour=10)], BERLIN, {"s1": T0})
    assert [t.kind for t in scheduler.due(utc(2024, 5, 3, 12))] == [MISSED]


def test_boot_runs() -> None:
    specs = [
        make_spec(Frequency.DAILY, hour=3, schedule_id="boot", run_at_boot=True),
        make_spec(Frequency.DAILY, hour=3, schedule_id="plain"),
        make_spec(
            Frequency.DAILY,
            hour=3,
            schedule_id="boot-and-catch-up",
            run_at_boot=True,
            run_at_boot_if_missed=True,
        ),
        make_spec(Frequency.DAILY, hour=3, schedule_id="disabled", run_at_boot=True, enabled=False),
    ]
    last = {"boot": T0, "plain": T0, "boot-and-catch-up": utc(2024, 4, 28)}
    scheduler = Scheduler(specs, BERLIN, last)
    triggers = scheduler.due(T0, booting=True)
    assert summary(triggers) == [
        ("boot-and-catch-up", RUN, utc(2024, 5, 1, 1), utc(2024, 4, 28, 1)),
        ("boot", BOOT, T0, T0),
    ]
    handle(scheduler, triggers)
    # Boot runs happen once per boot: later checks do not repeat them.
    assert scheduler.due(T0 + timedelta(minutes=1)) == []
    assert scheduler.last_run["boot"] == T0


def test_disabled_schedules_never_trigger() -> None:
    spec = make_spec(Frequency.HOURLY, minute=0, enabled=False, run_at_boot=True)
    scheduler = Scheduler([spec], BERLIN, {"s1": T0})
    assert scheduler.due(T0, booting=True) == []
    for hours in range(1, 100, 7):
        assert scheduler.due(T0 + timedelta(hours=hours), resumed=True) == []
    assert scheduler.next_wakeup(T0) is None


def test_new_schedule_never_fires_for_the_past() -> None:
    spec = make_spec(Frequency.HOURLY, minute=0)
    scheduler = Scheduler([spec], BERLIN)
    assert scheduler.due(T0, booting=True) == []
    assert scheduler.last_run == {"s1": T0}
    assert [t.planned for t in scheduler.due(utc(2024, 5, 1, 9))] == [utc(2024, 5, 1, 9)]


def test_next_wakeup_is_the_earliest_run() -> None:
    specs = [
        make_spec(Frequency.DAILY, hour=12, schedule_id="noon"),
        make_spec(Frequency.PERIODIC, every_seconds=1800, schedule_id="half-hour"),
        make_spec(Frequency.ONCE, once_at=utc(2024, 5, 1, 8, 40), schedule_id="once"),
    ]
    scheduler = running(specs, dict.fromkeys(["noon", "half-hour", "once"], T0))
    assert scheduler.next_wakeup(T0) == utc(2024, 5, 1, 8, 40)
    handle(scheduler, scheduler.due(utc(2024, 5, 1, 8, 40)))
    assert scheduler.next_wakeup(utc(2024, 5, 1, 8, 40)) == utc(2024, 5, 1, 9)
    # Something due but not yet handled: the wakeup is in the past, meaning "now".
    assert scheduler.next_wakeup(utc(2024, 5, 1, 9, 5)) == utc(2024, 5, 1, 9)
    assert Scheduler([], BERLIN).next_wakeup(T0) is None


def test_once_fires_once() -> None:
    spec = make_spec(Frequency.ONCE, once_at=utc(2024, 5, 1, 9))
    scheduler = running([spec], {"s1": T0})
    triggers = scheduler.due(utc(2024, 5, 1, 9, 1))
    assert summary(triggers) == [("s1", RUN, utc(2024, 5, 1, 9), utc(2024, 5, 1, 9))]
    handle(scheduler, triggers)
    assert scheduler.due(utc(2024, 6, 1)) == []
    assert scheduler.next_wakeup(utc(2024, 6, 1)) is None


def test_driving_by_next_wakeup_fires_each_run_exactly_once() -> None:
    specs = [
        make_spec(Frequency.HOURLY, minute=20, schedule_id="h", random_delay_seconds=600),
        make_spec(Frequency.DAILY, hour=2, minute=30, schedule_id="d"),
        make_spec(Frequency.PERIODIC, every_seconds=5400, offset_seconds=60, schedule_id="p"),
    ]
    start = utc(2024, 3, 29)  # across the Berlin spring-forward night
    scheduler = running(specs, dict.fromkeys(["h", "d", "p"], start), at=start)
    fired: dict[str, list[datetime]] = {"h": [], "d": [], "p": []}
    now = start
    while True:
        wake = scheduler.next_wakeup(now)
        assert wake is not None
        if wake > utc(2024, 4, 2):
            break
        now = max(now, wake)
        for trigger in scheduler.due(now):
            assert trigger.kind is RUN and not trigger.folded
            fired[trigger.schedule_id].append(trigger.planned)
            scheduler.mark_handled(trigger.schedule_id, trigger.planned)
    for spec in specs:
        expected: list[datetime] = []
        after = start
        while (run := next_run(spec, after, BERLIN)) is not None and run <= utc(2024, 4, 2):
            expected.append(run)
            after = run
        assert fired[spec.schedule_id] == expected
    assert len(fired["d"]) == 4
    assert len(fired["p"]) == 4 * 16


def test_update_keeps_unchanged_and_restarts_changed_schedules() -> None:
    keep = make_spec(Frequency.HOURLY, minute=0, schedule_id="keep")
    retimed = make_spec(Frequency.HOURLY, minute=0, schedule_id="retimed")
    gone = make_spec(Frequency.HOURLY, minute=0, schedule_id="gone")
    scheduler = running([keep, retimed, gone], dict.fromkeys(["keep", "retimed", "gone"], T0))
    now = utc(2024, 5, 1, 11, 30)
    scheduler.update(
        [
            make_spec(Frequency.HOURLY, minute=0, schedule_id="keep", stop_after_seconds=60),
            make_spec(Frequency.HOURLY, minute=45, schedule_id="retimed"),
            make_spec(Frequency.HOURLY, minute=0, schedule_id="new"),
        ],
        now=now,
    )
    assert scheduler.last_run == {"keep": T0, "retimed": now, "new": now}
    triggers = scheduler.due(now)
    # Only the unchanged schedule still owes its runs; options come from the new spec.
    assert summary(triggers) == [("keep", RUN, utc(2024, 5, 1, 11), utc(2024, 5, 1, 9))]
    assert triggers[0].stop_after_seconds == 60
    handle(scheduler, triggers)
    assert scheduler.next_wakeup(now) == utc(2024, 5, 1, 11, 45)


def test_update_without_now_starts_new_schedules_at_the_next_check() -> None:
    scheduler = running([], {})
    scheduler.update([make_spec(Frequency.HOURLY, minute=0)])
    later = utc(2024, 5, 1, 12, 30)
    assert scheduler.due(later) == []
    assert scheduler.last_run == {"s1": later}


def test_reenabling_does_not_fire_for_the_disabled_time() -> None:
    spec = make_spec(Frequency.HOURLY, minute=0)
    scheduler = running([spec], {"s1": T0})
    scheduler.update([make_spec(Frequency.HOURLY, minute=0, enabled=False)])
    assert scheduler.due(utc(2024, 5, 1, 15)) == []
    now = utc(2024, 5, 2, 15, 30)
    scheduler.update([spec], now=now)
    assert scheduler.due(now) == []
    assert scheduler.next_wakeup(now) == utc(2024, 5, 2, 16)


def test_retries_trigger_in_turn() -> None:
    spec = make_spec(Frequency.DAILY, hour=3, retry_count=2, retry_delay_seconds=600)
    scheduler = running([spec], {"s1": T0})
    failed = utc(2024, 5, 1, 9)
    planned = scheduler.plan_retries("s1", failed)
    assert planned == [failed + timedelta(minutes=10), failed + timedelta(minutes=20)]
    assert scheduler.next_wakeup(failed) == planned[0]
    assert scheduler.due(failed + timedelta(minutes=5)) == []
    (first,) = scheduler.due(planned[0])
    assert (first.kind, first.planned) == (RETRY, planned[0])
    scheduler.mark_handled("s1", first.planned)
    assert scheduler.last_run == {"s1": T0}  # retries do not advance the schedule
    assert scheduler.next_wakeup(planned[0]) == planned[1]
    scheduler.cancel_retries("s1")
    assert scheduler.due(planned[1]) == []
    with pytest.raises(ScheduleError):
        scheduler.plan_retries("unknown", failed)


def test_duplicate_schedule_ids_are_refused() -> None:
    with pytest.raises(ScheduleError, match="twice"):
        Scheduler([make_spec(), make_spec()], BERLIN)


def test_mark_handled_never_moves_backwards() -> None:
    scheduler = running([HOURLY], {"hourly": utc(2024, 5, 1, 9)})
    scheduler.mark_handled("hourly", utc(2024, 5, 1, 7))
    assert scheduler.last_run == {"hourly": utc(2024, 5, 1, 9)}
