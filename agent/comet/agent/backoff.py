"""The agent's retry back-off: capped, jittered, and reset by the caller on success.

Used by the live connection and the job outbox. The jitter only shortens a wait
(down to half), so the cap bounds how long after a server comes back the agent
finds it, and a fleet that lost its server together does not return together."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    first: float = 1.0  # seconds before the first retry (at most)
    cap: float = 10.0  # seconds: no wait is longer

    def ceiling(self, failures: int) -> float:
        """The longest wait after ``failures`` failures in a row: doubles from
        ``first`` up to ``cap``."""
        doublings = min(max(failures - 1, 0), 32)
        return min(self.cap, self.first * float(2**doublings))

    def delay(
        self, failures: int, *, uniform: Callable[[float, float], float] = random.uniform
    ) -> float:
        ceiling = self.ceiling(failures)
        return uniform(ceiling / 2, ceiling)
