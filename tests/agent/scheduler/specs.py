"""Shared helpers for scheduler tests: timezones, a spec factory, local-time shorthands."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from comet.agent.scheduler import Frequency, ScheduleSpec

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC_ZONE = ZoneInfo("UTC")


def make_spec(frequency: Frequency = Frequency.DAILY, **fields: Any) -> ScheduleSpec:
    fields.setdefault("schedule_id", "s1")
    fields.setdefault("item_id", "item-1")
    fields.setdefault("vault_id", "vault-1")
    return ScheduleSpec(frequency=frequency, **fields)


def local(
    tz: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0
) -> datetime:
    """An aware datetime at a local wall-clock time (first occurrence if repeated)."""
    return datetime(year, month, day, hour, minute, tzinfo=tz)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
