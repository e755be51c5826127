"""Retention policy evaluation, table-driven for every range type and its boundaries.

``now`` is Sunday 2024-03-31 12:00 in Europe/Berlin: the day clocks jump from 02:00 to
03:00 (a 23-hour day), in a leap year, at a month end.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from comet.agent.errors import RetentionPolicyError
from comet.agent.maintenance.retention import (
    RangeType,
    RetentionMode,
    RetentionPolicy,
    RetentionRange,
    RetentionRules,
    plan_retention,
    to_ns,
)
from comet.agent.repository.snapshot import Snapshot

TZ = ZoneInfo("Europe/Berlin")
NOW = datetime(2024, 3, 31, 12, 0, tzinfo=TZ)


def at(text: str) -> int:
    """``"2024-03-30 08:00"`` in Berlin time, as ns."""
    return to_ns(datetime.fromisoformat(text).replace(tzinfo=TZ))


def snap(i: int, start_ns: int, item: str = "item-1", device: str = "dev-1") -> Snapshot:
    return Snapshot(item, device, "h", b"\0" * 32, start_ns, start_ns + 1, id=bytes([i]) * 32)


def kept_times(times: list[str], *ranges: RetentionRange) -> list[str]:
    snaps = [snap(i, at(t)) for i, t in enumerate(times)]
    policy = RetentionPolicy(RetentionMode.DELETE_EXCEPT, ranges)
    plan = plan_retention(snaps, RetentionRules(policy), now=NOW, tz=TZ)
    by_id = {s.id: t for s, t in zip(snaps, times, strict=True)}
    return sorted(by_id[s.id] for s in plan.keep)


R = RetentionRange
T = RangeType

CASES = [
    # 900: the N newest; 0 keeps none.
    ("most recent 2", [R(T.MOST_RECENT_JOBS, jobs=2)],
     ["2024-03-01 10:00", "2024-03-02 10:00", "2024-03-03 10:00", "2024-03-04 10:00"],
     ["2024-03-03 10:00", "2024-03-04 10:00"]),
    ("most recent 0", [R(T.MOST_RECENT_JOBS, jobs=0)], ["2024-03-01 10:00"], []),
    ("most recent more than exist", [R(T.MOST_RECENT_JOBS, jobs=9)],
     ["2024-03-01 10:00", "2024-03-02 10:00"], ["2024-03-01 10:00", "2024-03-02 10:00"]),
    # 901: strictly newer than the timestamp.
    ("newer than is strict", [R(T.NEWER_THAN, newer_than_ns=at("2024-03-02 10:00"))],
     ["2024-03-01 10:00", "2024-03-02 10:00", "2024-03-03 10:00"], ["2024-03-03 10:00"]),
    # 902: at or after the wall-clock moment; one day before the DST day's noon is
    # 23 hours earlier, not 24.
    ("since 1 day across DST", [R(T.JOBS_SINCE, days=1)],
     ["2024-03-30 11:59", "2024-03-30 12:00", "2024-03-31 09:00"],
     ["2024-03-30 12:00", "2024-03-31 09:00"]),
    ("since 1 month clamps to Feb 29", [R(T.JOBS_SINCE, months=1)],
     ["2024-02-29 11:59", "2024-02-29 12:00", "2024-03-15 00:00"],
     ["2024-02-29 12:00", "2024-03-15 00:00"]),
    ("since 1 week 1 day", [R(T.JOBS_SINCE, weeks=1, days=1)],
     ["2024-03-23 11:59", "2024-03-23 12:00"], ["2024-03-23 12:00"]),
    # 903: first job of each of the last N calendar days, today included; the day is
    # the local one (00:30 on the 31st is 23:30 UTC on the 30th).
    ("first per day, last 2 days", [R(T.FIRST_JOB_EACH_DAY, days=2)],
     ["2024-03-29 23:59", "2024-03-30 08:00", "2024-03-30 20:00", "2024-03-31 00:30",
      "2024-03-31 09:00"],
     ["2024-03-30 08:00", "2024-03-31 00:30"]),
    ("first per day, 0 days", [R(T.FIRST_JOB_EACH_DAY, days=0)], ["2024-03-31 09:00"], []),
    # 906: weeks start at 00:00 on the offset weekday (0 Sunday, 1 Monday).
    ("first per week from Monday", [R(T.FIRST_JOB_EACH_WEEK, weeks=2, weekday_offset=1)],
     ["2024-03-17 23:00", "2024-03-18 00:00", "2024-03-20 10:00", "2024-03-25 10:00",
      "2024-03-31 10:00"],
     ["2024-03-18 00:00", "2024-03-25 10:00"]),
    ("first per week from Sunday", [R(T.FIRST_JOB_EACH_WEEK, weeks=2, weekday_offset=0)],
     ["2024-03-23 23:59", "2024-03-24 00:00", "2024-03-25 10:00", "2024-03-31 10:00"],
     ["2024-03-24 00:00", "2024-03-31 10:00"]),
    # 905: months start on day month_offset, clamped to short months' last day.
    ("first per month from the 31st", [R(T.FIRST_JOB_EACH_MONTH, months=2, month_offset=31)],
     ["2024-02-28 10:00", "2024-02-29 10:00", "2024-03-01 10:00", "2024-03-30 10:00",
      "2024-03-31 01:00", "2024-03-31 09:00"],
     ["2024-02-29 10:00", "2024-03-31 01:00"]),
    ("first per month from the 1st", [R(T.FIRST_JOB_EACH_MONTH, months=1, month_offset=1)],
     ["2024-02-29 10:00", "2024-03-01 00:00", "2024-03-02 10:00"], ["2024-03-01 00:00"]),
    ("month offset 0 means the 1st", [R(T.FIRST_JOB_EACH_MONTH, months=1, month_offset=0)],
     ["2024-02-29 10:00", "2024-03-01 00:00"], ["2024-03-01 00:00"]),
    # 907-909: newest per day / ISO week / month, for the N latest periods with a job.
    ("last 2, one per day", [R(T.LAST_BACKUPS_ONE_PER_DAY, jobs=2)],
     ["2024-03-20 10:00", "2024-03-29 18:00", "2024-03-30 09:00", "2024-03-31 08:00",
      "2024-03-31 11:00"],
     ["2024-03-30 09:00", "2024-03-31 11:00"]),
    ("last 2, one per week", [R(T.LAST_BACKUPS_ONE_PER_WEEK, jobs=2)],
     ["2024-03-17 10:00", "2024-03-19 10:00", "2024-03-24 23:59", "2024-03-25 00:00",
      "2024-03-31 10:00"],
     ["2024-03-24 23:59", "2024-03-31 10:00"]),
    ("last 2, one per month", [R(T.LAST_BACKUPS_ONE_PER_MONTH, jobs=2)],
     ["2024-01-15 10:00", "2024-01-20 10:00", "2024-02-10 10:00", "2024-02-29 23:59",
      "2024-03-05 10:00"],
     ["2024-02-29 23:59", "2024-03-05 10:00"]),
    ("last 3 per month reaches back a year", [R(T.LAST_BACKUPS_ONE_PER_MONTH, jobs=3)],
     ["2023-02-01 10:00", "2023-03-01 10:00", "2024-03-05 10:00"],
     ["2023-02-01 10:00", "2023-03-01 10:00", "2024-03-05 10:00"]),
    # Ranges are applied together: a job is kept if any range keeps it.
    ("ranges are a union",
     [R(T.MOST_RECENT_JOBS, jobs=1), R(T.LAST_BACKUPS_ONE_PER_MONTH, jobs=2)],
     ["2024-01-15 10:00", "2024-02-10 10:00", "2024-03-05 10:00", "2024-03-06 10:00"],
     ["2024-02-10 10:00", "2024-03-06 10:00"]),
    # A job dated after now (a clock ahead) is never forgotten.
    ("future jobs are kept", [R(T.MOST_RECENT_JOBS, jobs=0)], ["2024-04-01 10:00"],
     ["2024-04-01 10:00"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("ranges", "times", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_range(ranges: list[RetentionRange], times: list[str], expected: list[str]) -> None:
    assert kept_times(times, *ranges) == expected


def test_keep_everything_keeps_all() -> None:
    snaps = [snap(i, at(f"2020-01-0{i + 1} 10:00")) for i in range(3)]
    policy = RetentionPolicy(RetentionMode.KEEP_EVERYTHING, (R(T.MOST_RECENT_JOBS, jobs=1),))
    plan = plan_retention(snaps, RetentionRules(policy), now=NOW, tz=TZ)
    assert plan.keep == tuple(snaps) and plan.forget == ()


def test_delete_except_without_ranges_is_refused() -> None:
    rules = RetentionRules(RetentionPolicy(RetentionMode.DELETE_EXCEPT))
    with pytest.raises(RetentionPolicyError):
        plan_retention([snap(0, at("2024-03-01 10:00"))], rules, now=NOW, tz=TZ)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        plan_retention([], RetentionRules(RetentionPolicy()), now=datetime(2024, 1, 1), tz=TZ)


@pytest.mark.parametrize(
    "bad",
    [
        {"jobs": -1},
        {"weekday_offset": 7},
        {"month_offset": 32},
    ],
)
def test_malformed_range_is_refused(bad: dict[str, int]) -> None:
    with pytest.raises(RetentionPolicyError):
        RetentionRange(RangeType.MOST_RECENT_JOBS, **bad)


def test_override_beats_default_and_unknown_items_use_default() -> None:
    keep1 = RetentionPolicy(RetentionMode.DELETE_EXCEPT, (R(T.MOST_RECENT_JOBS, jobs=1),))
    keep3 = RetentionPolicy(RetentionMode.DELETE_EXCEPT, (R(T.MOST_RECENT_JOBS, jobs=3),))
    rules = RetentionRules(
        vault_default=keep1,
        item_overrides={"a": keep3, "gone": keep3},
        known_items=frozenset({"a", "b"}),
    )
    snaps = []
    n = 0
    for item, device in [("a", "d1"), ("a", "d2"), ("b", "d1"), ("gone", "d1")]:
        for day in range(1, 6):
            snaps.append(snap(n, at(f"2024-03-0{day} 10:00"), item, device))
            n += 1
    plan = plan_retention(snaps, rules, now=NOW, tz=TZ)
    kept: dict[tuple[str, str], int] = {}
    for s in plan.keep:
        kept[(s.item_id, s.device_id)] = kept.get((s.item_id, s.device_id), 0) + 1
    # The override applies per (item, device) group; "b" has no override; "gone" has
    # one but is unknown, so the vault default decides.
    assert kept == {("a", "d1"): 3, ("a", "d2"): 3, ("b", "d1"): 1, ("gone", "d1"): 1}
    assert len(plan.forget) == 20 - 8
    assert rules.policy_for("a") is keep3
    assert rules.policy_for("gone") is keep1
    assert RetentionRules(keep1, {"x": keep3}).policy_for("x") is keep3  # all known
