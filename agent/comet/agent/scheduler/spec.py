"""``ScheduleSpec``: the timing and job options of one schedule, as the scheduler sees it.

The rpc layer converts the protobuf ``Schedule`` into this; nothing here knows the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from comet.agent.errors import AgentError
from comet.agent.scheduler.frequency import Frequency

MAX_RANDOM_DELAY_SECONDS = 5 * 3600
"""Comet's ceiling for a schedule's random delay; larger values are capped, not refused."""

MINUTES_PER_DAY = 1440


class ScheduleError(AgentError):
    """A schedule's settings cannot be evaluated (out-of-range hour, WEEKLY without days...).
    The message names the schedule and the setting to fix."""

    code = "schedule.invalid"


@dataclass(frozen=True)
class ScheduleSpec:
    """One schedule: which item goes to which vault, when, and with which job options.

    Timing fields by ``frequency`` (all wall-clock values are in the device's timezone):

    * ONCE: ``once_at`` (aware). Window, weekday filter and random delay do not apply.
    * DAILY: ``hour``:``minute`` every day.
    * HOURLY: ``minute`` past every hour.
    * WEEKLY: ``hour``:``minute`` on each day of ``weekdays`` (0 = Monday; required).
    * MONTHLY: ``hour``:``minute`` on ``day_of_month`` (1-31); in a shorter month, on its
      last day.
    * PERIODIC: every ``every_seconds`` at Unix-epoch-aligned multiples shifted by
      ``offset_seconds`` (independent of the timezone).

    For every frequency but WEEKLY and ONCE, a non-empty ``weekdays`` is a filter: a planned
    run whose local weekday is not listed is dropped. ``window_start_minute`` and
    ``window_end_minute`` (minutes after local midnight, both or neither; the window may
    wrap past midnight) push runs outside the window to its next opening.
    ``random_delay_seconds`` is capped at five hours.
    """

    schedule_id: str
    item_id: str
    vault_id: str
    frequency: Frequency
    once_at: datetime | None = None
    hour: int = 0
    minute: int = 0
    weekdays: frozenset[int] = field(default_factory=frozenset)
    day_of_month: int = 1
    every_seconds: int = 0
    offset_seconds: int = 0
    window_start_minute: int | None = None
    window_end_minute: int | None = None
    random_delay_seconds: int = 0
    run_at_boot: bool = False
    run_at_boot_if_missed: bool = False
    skip_if_running: bool = False
    stop_after_seconds: int = 0
    retry_count: int = 0
    retry_delay_seconds: int = 0
    enabled: bool = True

    def __post_init__(self) -> None:
        # Callers may pass any iterable of ints; store a frozenset so specs hash and compare.
        object.__setattr__(self, "weekdays", frozenset(self.weekdays))
        object.__setattr__(self, "frequency", Frequency(self.frequency))
        self._validate()

    @property
    def delay_cap_seconds(self) -> int:
        """The random delay ceiling actually used: the configured one, capped at 5 h."""
        if self.frequency is Frequency.ONCE:
            return 0
        return max(0, min(self.random_delay_seconds, MAX_RANDOM_DELAY_SECONDS))

    @property
    def has_window(self) -> bool:
        return self.window_start_minute is not None

    def timing(self) -> tuple[object, ...]:
        """The fields that decide when runs are planned; equal timing keeps run history."""
        return (
            self.frequency,
            self.once_at,
            self.hour,
            self.minute,
            self.weekdays,
            self.day_of_month,
            self.every_seconds,
            self.offset_seconds,
            self.window_start_minute,
            self.window_end_minute,
            self.delay_cap_seconds,
            self.enabled,
        )

    def _fail(self, what: str) -> ScheduleError:
        return ScheduleError(f"schedule {self.schedule_id!r}: {what}")

    def _validate(self) -> None:
        if not self.schedule_id:
            raise ScheduleError("a schedule needs a schedule_id")
        freq = self.frequency
        if freq is Frequency.ONCE and (self.once_at is None or self.once_at.utcoffset() is None):
            raise self._fail("a ONCE schedule needs a timezone-aware once_at")
        if not 0 <= self.hour <= 23:
            raise self._fail(f"hour must be 0-23, not {self.hour}")
        if not 0 <= self.minute <= 59:
            raise self._fail(f"minute must be 0-59, not {self.minute}")
        if any(not 0 <= d <= 6 for d in self.weekdays):
            raise self._fail("weekdays must be 0 (Monday) to 6 (Sunday)")
        if freq is Frequency.WEEKLY and not self.weekdays:
            raise self._fail("a WEEKLY schedule needs at least one weekday")
        if freq is Frequency.MONTHLY and not 1 <= self.day_of_month <= 31:
            raise self._fail(f"day_of_month must be 1-31, not {self.day_of_month}")
        if freq is Frequency.PERIODIC and self.every_seconds <= 0:
            raise self._fail("a PERIODIC schedule needs every_seconds > 0")
        if self.offset_seconds < 0:
            raise self._fail("offset_seconds must not be negative")
        self._validate_window()
        for name in (
            "random_delay_seconds",
            "stop_after_seconds",
            "retry_count",
            "retry_delay_seconds",
        ):
            if getattr(self, name) < 0:
                raise self._fail(f"{name} must not be negative")

    def _validate_window(self) -> None:
        start, end = self.window_start_minute, self.window_end_minute
        if start is None and end is None:
            return
        if start is None or end is None:
            raise self._fail("a time window needs both a start and an end minute")
        if not 0 <= start < MINUTES_PER_DAY or not 0 <= end <= MINUTES_PER_DAY:
            raise self._fail("window minutes must be 0-1439 (end: 0-1440)")
        if start % MINUTES_PER_DAY == end % MINUTES_PER_DAY:
            raise self._fail("a time window must not start and end at the same minute")
