"""The agent's one clock: wall time for records (snapshot times, lock notes) and
monotonic time for measuring how long something lasted. Nothing compares the wall time
of two devices: staleness and grace periods use monotonic time or the storage's own
timestamps (docs/format.md, "Locks")."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    """Wall and monotonic time in nanoseconds. ``offset_ns`` shifts the wall clock
    (tests model a device whose clock is wrong)."""

    offset_ns: int = 0

    def time_ns(self) -> int:
        return time.time_ns() + self.offset_ns

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()


def system_clock() -> Clock:
    """The device's clock, shifted when the environment says so (tests only)."""
    from comet.agent.config import clock_offset_ns_from_env

    return Clock(clock_offset_ns_from_env())


__all__ = ["Clock", "system_clock"]
