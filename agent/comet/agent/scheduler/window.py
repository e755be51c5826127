"""``TimeWindow``: the local hours in which a schedule may start a run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from comet.agent.scheduler.spec import MINUTES_PER_DAY
from comet.agent.scheduler.wallclock import (
    ONE_DAY,
    first_with_offset_of,
    local_date,
    occurrences,
    resolve,
    seconds_into_day,
)


@dataclass(frozen=True)
class TimeWindow:
    """Runs may start at local wall times in [start, end) minutes after midnight; when
    ``start > end`` the window wraps past midnight (22:00-06:00). Membership is by wall
    clock, so on a fall-back day a window can be open twice in the repeated hour."""

    start_minute: int
    end_minute: int

    @property
    def closed_minutes(self) -> int:
        return (self.start_minute - self.end_minute) % MINUTES_PER_DAY

    @property
    def longest_push(self) -> timedelta:
        """The furthest a run can be pushed: the closed span, plus slack for DST shifts."""
        return timedelta(minutes=self.closed_minutes, hours=2)

    def contains(self, instant: datetime, tz: ZoneInfo) -> bool:
        second = seconds_into_day(instant, tz)
        start, end = self.start_minute * 60, self.end_minute * 60
        if start < end:
            return start <= second < end
        return second >= start or second < end

    def open_at_or_after(self, instant: datetime, tz: ZoneInfo) -> datetime:
        """``instant`` if the window is open then, else the window's next opening. A window
        whose opening falls in a spring-forward gap opens when the gap ends."""
        if self.contains(instant, tz):
            return instant
        return self._next_change(instant, tz, self.start_minute, opening=True)

    def open_for(self, instant: datetime, tz: ZoneInfo) -> timedelta:
        """How long the window stays open from ``instant`` (zero if it is closed)."""
        if not self.contains(instant, tz):
            return timedelta(0)
        return self._next_change(instant, tz, self.end_minute, opening=False) - instant

    def _next_change(
        self, instant: datetime, tz: ZoneInfo, minute: int, *, opening: bool
    ) -> datetime:
        at = time(minute % MINUTES_PER_DAY // 60, minute % 60)
        today = local_date(instant, tz)
        candidates = [instant + 3 * ONE_DAY]
        for shift in range(-1, 3):
            day = today + shift * ONE_DAY
            candidates.extend(occurrences(day, at, tz))
            if opening:
                candidates.append(resolve(day, at, tz))
        best = min(c for c in candidates if c > instant)
        # A DST jump can move the wall clock into (or out of) the window without passing
        # the boundary minute; such a jump is the real change.
        if instant.astimezone(tz).utcoffset() != best.astimezone(tz).utcoffset():
            jump = first_with_offset_of(instant, best, tz)
            if jump < best and self.contains(jump, tz) == opening:
                return jump
        return best
