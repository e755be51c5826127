"""next_run / previous_run: every frequency, filters, windows and DST, as tables."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from comet.agent.scheduler import Frequency, ScheduleSpec, next_run, previous_run
from tests.agent.scheduler.specs import BERLIN, NEW_YORK, UTC_ZONE, local, make_spec, utc

D, H, W, M, P = (
    Frequency.DAILY,
    Frequency.HOURLY,
    Frequency.WEEKLY,
    Frequency.MONTHLY,
    Frequency.PERIODIC,
)


def successive(spec: ScheduleSpec, tz: ZoneInfo, after: datetime, count: int) -> list[str]:
    found: list[str] = []
    for _ in range(count):
        upcoming = next_run(spec, after, tz)
        assert upcoming is not None
        assert upcoming.utcoffset() == timedelta(0)
        found.append(upcoming.astimezone(tz).isoformat(sep=" ", timespec="minutes"))
        after = upcoming
    return found


CASES: list[tuple[str, Frequency, dict[str, Any], ZoneInfo, datetime, list[str]]] = [
    (
        "daily",
        D,
        {"hour": 9, "minute": 5},
        UTC_ZONE,
        utc(2024, 5, 1, 12),
        ["2024-05-02 09:05+00:00", "2024-05-03 09:05+00:00"],
    ),
    (
        "daily, after exactly on a run is strictly after",
        D,
        {"hour": 9},
        UTC_ZONE,
        utc(2024, 5, 1, 9),
        ["2024-05-02 09:00+00:00"],
    ),
    (
        "daily, Berlin spring forward: 02:30 does not exist, runs at 03:00",
        D,
        {"hour": 2, "minute": 30},
        BERLIN,
        local(BERLIN, 2024, 3, 30, 12),
        ["2024-03-31 03:00+02:00", "2024-04-01 02:30+02:00"],
    ),
    (
        "daily, Berlin fall back: 02:30 happens twice, runs once",
        D,
        {"hour": 2, "minute": 30},
        BERLIN,
        local(BERLIN, 2024, 10, 26, 12),
        ["2024-10-27 02:30+02:00", "2024-10-28 02:30+01:00"],
    ),
    (
        "daily, New York spring forward",
        D,
        {"hour": 2, "minute": 30},
        NEW_YORK,
        local(NEW_YORK, 2024, 3, 9, 12),
        ["2024-03-10 03:00-04:00", "2024-03-11 02:30-04:00"],
    ),
    (
        "daily, New York fall back: 01:30 runs once",
        D,
        {"hour": 1, "minute": 30},
        NEW_YORK,
        local(NEW_YORK, 2024, 11, 2, 12),
        ["2024-11-03 01:30-04:00", "2024-11-04 01:30-05:00"],
    ),
    (
        "daily with a weekday filter (Mon-Fri) skips the weekend",
        D,
        {"hour": 8, "weekdays": {0, 1, 2, 3, 4}},
        UTC_ZONE,
        utc(2024, 5, 3, 12),  # a Friday
        ["2024-05-06 08:00+00:00", "2024-05-07 08:00+00:00"],
    ),
    (
        "hourly",
        H,
        {"minute": 15},
        UTC_ZONE,
        utc(2024, 5, 1, 12, 15),
        ["2024-05-01 13:15+00:00", "2024-05-01 14:15+00:00"],
    ),
    (
        "hourly, Berlin spring forward: still every 60 minutes",
        H,
        {"minute": 15},
        BERLIN,
        local(BERLIN, 2024, 3, 31, 0, 30),
        ["2024-03-31 01:15+01:00", "2024-03-31 03:15+02:00", "2024-03-31 04:15+02:00"],
    ),
    (
        "hourly, New York fall back: both passes of 01:30 run",
        H,
        {"minute": 30},
        NEW_YORK,
        local(NEW_YORK, 2024, 11, 3, 0, 45),
        ["2024-11-03 01:30-04:00", "2024-11-03 01:30-05:00", "2024-11-03 02:30-05:00"],
    ),
    (
        "hourly with a weekday filter (Sunday only)",
        H,
        {"minute": 0, "weekdays": {6}},
        UTC_ZONE,
        utc(2024, 5, 4, 22, 30),  # a Saturday
        ["2024-05-05 00:00+00:00", "2024-05-05 01:00+00:00"],
    ),
    (
        "hourly with a weekday filter: the filter is by local day",
        H,
        {"minute": 0, "weekdays": {6}},
        BERLIN,
        local(BERLIN, 2024, 5, 5, 22, 30),
        ["2024-05-05 23:00+02:00", "2024-05-12 00:00+02:00"],
    ),
    (
        "weekly on Tuesday and Thursday",
        W,
        {"hour": 8, "weekdays": {1, 3}},
        BERLIN,
        local(BERLIN, 2024, 5, 1, 12),  # a Wednesday
        ["2024-05-02 08:00+02:00", "2024-05-07 08:00+02:00", "2024-05-09 08:00+02:00"],
    ),
    (
        "weekly across the Berlin spring-forward Sunday",
        W,
        {"hour": 2, "minute": 30, "weekdays": {6}},
        BERLIN,
        local(BERLIN, 2024, 3, 25),
        ["2024-03-31 03:00+02:00", "2024-04-07 02:30+02:00"],
    ),
    (
        "monthly on the 31st: last day of shorter months, Feb 29 in a leap year",
        M,
        {"hour": 6, "day_of_month": 31},
        UTC_ZONE,
        utc(2024, 1, 31, 12),
        ["2024-02-29 06:00+00:00", "2024-03-31 06:00+00:00", "2024-04-30 06:00+00:00"],
    ),
    (
        "monthly on the 29th: Feb 28 outside leap years",
        M,
        {"hour": 6, "day_of_month": 29},
        UTC_ZONE,
        utc(2023, 1, 30),
        ["2023-02-28 06:00+00:00", "2023-03-29 06:00+00:00"],
    ),
    (
        "monthly on the 29th: Feb 29 in a leap year",
        M,
        {"hour": 6, "day_of_month": 29},
        UTC_ZONE,
        utc(2024, 2, 1),
        ["2024-02-29 06:00+00:00", "2024-03-29 06:00+00:00"],
    ),
    (
        "monthly across a year end",
        M,
        {"hour": 0, "day_of_month": 1},
        BERLIN,
        local(BERLIN, 2024, 12, 1, 0, 1),
        ["2025-01-01 00:00+01:00", "2025-02-01 00:00+01:00"],
    ),
    (
        "monthly on the 15th, Mondays only",
        M,
        {"hour": 6, "day_of_month": 15, "weekdays": {0}},
        UTC_ZONE,
        utc(2024, 1, 1),
        ["2024-01-15 06:00+00:00", "2024-04-15 06:00+00:00", "2024-07-15 06:00+00:00"],
    ),
    (
        "periodic, epoch aligned with an offset",
        P,
        {"every_seconds": 3600, "offset_seconds": 600},
        UTC_ZONE,
        utc(2024, 5, 1, 12),
        ["2024-05-01 12:10+00:00", "2024-05-01 13:10+00:00"],
    ),
    (
        "periodic, offset larger than the period wraps",
        P,
        {"every_seconds": 900, "offset_seconds": 900 + 300},
        UTC_ZONE,
        utc(2024, 5, 1, 12, 1),
        ["2024-05-01 12:05+00:00", "2024-05-01 12:20+00:00"],
    ),
    (
        "periodic every 6 h in Berlin: aligned to UTC, not to local midnight",
        P,
        {"every_seconds": 6 * 3600},
        BERLIN,
        local(BERLIN, 2024, 5, 1, 1),
        ["2024-05-01 02:00+02:00", "2024-05-01 08:00+02:00"],
    ),
    (
        "periodic with a weekday filter (Monday only)",
        P,
        {"every_seconds": 12 * 3600},
        UTC_ZONE,
        utc(2024, 5, 6, 13),  # a Monday
        ["2024-05-07 00:00+00:00"],
    ),
    (
        "window: a daily run before the window waits for it to open",
        D,
        {"hour": 7, "window_start_minute": 8 * 60, "window_end_minute": 9 * 60},
        BERLIN,
        local(BERLIN, 2024, 5, 1),
        ["2024-05-01 08:00+02:00", "2024-05-02 08:00+02:00"],
    ),
    (
        "window wrapping past midnight: 12:00 waits until 22:00",
        D,
        {"hour": 12, "window_start_minute": 22 * 60, "window_end_minute": 6 * 60},
        BERLIN,
        local(BERLIN, 2024, 5, 1),
        ["2024-05-01 22:00+02:00", "2024-05-02 22:00+02:00"],
    ),
    (
        "window wrapping past midnight: a run inside it is not moved",
        D,
        {"hour": 3, "window_start_minute": 22 * 60, "window_end_minute": 6 * 60},
        BERLIN,
        local(BERLIN, 2024, 5, 1),
        ["2024-05-01 03:00+02:00", "2024-05-02 03:00+02:00"],
    ),
    (
        "window: hourly runs outside it collapse into one run at the opening",
        H,
        {"minute": 0, "window_start_minute": 60, "window_end_minute": 3 * 60},
        UTC_ZONE,
        utc(2024, 5, 1, 0, 30),
        ["2024-05-01 01:00+00:00", "2024-05-01 02:00+00:00", "2024-05-02 01:00+00:00"],
    ),
    (
        "window ending at midnight (1440)",
        H,
        {"minute": 30, "window_start_minute": 23 * 60, "window_end_minute": 1440},
        UTC_ZONE,
        utc(2024, 5, 1, 12),
        ["2024-05-01 23:00+00:00", "2024-05-01 23:30+00:00", "2024-05-02 23:00+00:00"],
    ),
    (
        "window opening inside the Berlin spring-forward gap opens at 03:00",
        D,
        {"hour": 0, "window_start_minute": 150, "window_end_minute": 240},
        BERLIN,
        local(BERLIN, 2024, 3, 30, 12),
        ["2024-03-31 03:00+02:00", "2024-04-01 02:30+02:00"],
    ),
    (
        "periodic with a wrapping window",
        P,
        {"every_seconds": 4 * 3600, "window_start_minute": 23 * 60, "window_end_minute": 60},
        UTC_ZONE,
        utc(2024, 5, 1, 1),
        ["2024-05-01 23:00+00:00", "2024-05-02 00:00+00:00", "2024-05-02 23:00+00:00"],
    ),
]


@pytest.mark.parametrize(
    ("frequency", "fields", "tz", "after", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_successive_runs(
    frequency: Frequency,
    fields: dict[str, Any],
    tz: ZoneInfo,
    after: datetime,
    expected: list[str],
) -> None:
    spec = make_spec(frequency, **fields)
    assert successive(spec, tz, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("frequency", "fields", "tz", "after", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_previous_run_is_the_inverse(
    frequency: Frequency,
    fields: dict[str, Any],
    tz: ZoneInfo,
    after: datetime,
    expected: list[str],
) -> None:
    spec = make_spec(frequency, **fields)
    runs = [datetime.fromisoformat(text) for text in expected]
    for earlier, later in itertools.pairwise(runs):
        assert previous_run(spec, later, tz) == later
        assert previous_run(spec, later - timedelta(seconds=1), tz) == earlier


def test_periodic_keeps_real_spacing_across_dst() -> None:
    spec = make_spec(P, every_seconds=90 * 60)
    after = local(BERLIN, 2024, 3, 30, 20)
    previous = next_run(spec, after, BERLIN)
    assert previous is not None
    for _ in range(12):
        upcoming = next_run(spec, previous, BERLIN)
        assert upcoming is not None
        assert upcoming - previous == timedelta(minutes=90)
        assert int(upcoming.timestamp()) % (90 * 60) == 0
        previous = upcoming


@pytest.mark.parametrize(
    ("once_at", "after", "expected"),
    [
        (utc(2024, 6, 1, 12), utc(2024, 6, 1, 11), utc(2024, 6, 1, 12)),
        (utc(2024, 6, 1, 12), utc(2024, 6, 1, 12), None),
        (utc(2024, 6, 1, 12), utc(2024, 6, 2), None),
        (local(NEW_YORK, 2024, 6, 1, 8), utc(2024, 6, 1), utc(2024, 6, 1, 12)),
    ],
    ids=["future", "exactly-now", "past", "given-in-another-zone"],
)
def test_once(once_at: datetime, after: datetime, expected: datetime | None) -> None:
    spec = make_spec(Frequency.ONCE, once_at=once_at, random_delay_seconds=3600)
    assert next_run(spec, after, BERLIN) == expected


def test_disabled_schedule_has_no_runs() -> None:
    spec = make_spec(D, hour=3, enabled=False)
    assert next_run(spec, utc(2024, 5, 1), BERLIN) is None
    assert previous_run(spec, utc(2024, 5, 9), BERLIN) is None


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        next_run(make_spec(D), datetime(2024, 5, 1), BERLIN)
