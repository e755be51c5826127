"""ScheduleSpec validation and the retry plan."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from comet.agent.scheduler import Frequency, ScheduleError, retry_times
from tests.agent.scheduler.specs import make_spec, utc


@pytest.mark.parametrize(
    ("frequency", "fields", "message"),
    [
        (Frequency.ONCE, {}, "once_at"),
        (Frequency.ONCE, {"once_at": datetime(2024, 1, 1)}, "once_at"),
        (Frequency.DAILY, {"hour": 24}, "hour"),
        (Frequency.DAILY, {"minute": 60}, "minute"),
        (Frequency.DAILY, {"weekdays": {7}}, "weekdays"),
        (Frequency.WEEKLY, {}, "weekday"),
        (Frequency.MONTHLY, {"day_of_month": 0}, "day_of_month"),
        (Frequency.MONTHLY, {"day_of_month": 32}, "day_of_month"),
        (Frequency.PERIODIC, {"every_seconds": 0}, "every_seconds"),
        (Frequency.DAILY, {"window_start_minute": 60}, "window"),
        (Frequency.DAILY, {"window_start_minute": 60, "window_end_minute": 60}, "window"),
        (Frequency.DAILY, {"window_start_minute": 0, "window_end_minute": 1440}, "window"),
        (Frequency.DAILY, {"window_start_minute": 1440, "window_end_minute": 60}, "window"),
        (Frequency.DAILY, {"retry_count": -1}, "retry_count"),
        (Frequency.DAILY, {"schedule_id": ""}, "schedule_id"),
    ],
)
def test_invalid_specs_are_refused(
    frequency: Frequency, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScheduleError, match=message) as caught:
        make_spec(frequency, **fields)
    assert caught.value.code == "schedule.invalid"


def test_frequency_codes_are_comets() -> None:
    assert [f.value for f in Frequency] == [8010, 8011, 8012, 8013, 8014, 8015]
    assert make_spec(8013, weekdays=[0]).frequency is Frequency.WEEKLY  # type: ignore[arg-type]


def test_spec_is_frozen_and_hashable() -> None:
    spec = make_spec(Frequency.WEEKLY, weekdays=[2, 0])
    assert spec.weekdays == frozenset({0, 2})
    assert hash(spec) == hash(make_spec(Frequency.WEEKLY, weekdays={0, 2}))
    with pytest.raises(AttributeError):
        spec.hour = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("count", "delay", "expected_minutes"),
    [
        (0, 600, []),
        (3, 0, []),
        (1, 600, [10]),
        (3, 300, [5, 10, 15]),
    ],
)
def test_retry_times(count: int, delay: int, expected_minutes: list[int]) -> None:
    spec = make_spec(Frequency.DAILY, retry_count=count, retry_delay_seconds=delay)
    failed = utc(2024, 5, 1, 3, 7)
    assert retry_times(spec, failed) == [failed + timedelta(minutes=m) for m in expected_minutes]
