"""The agent's retry back-off: doubles to a cap, jitters only downwards, resets."""

from __future__ import annotations

from comet.agent.backoff import Backoff


def test_doubles_to_the_cap_and_never_waits_longer() -> None:
    backoff = Backoff(first=0.5, cap=4.0)
    assert [backoff.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.ceiling(10_000) == 4.0  # no overflow after a long outage
    waits = [backoff.delay(9) for _ in range(2000)]
    assert min(waits) >= 2.0 and max(waits) <= 4.0
    # Spread, not synchronised: a fleet's retries fall across the whole window.
    assert len({round(w, 1) for w in waits}) > 15
    assert backoff.delay(3, uniform=lambda low, high: low) == 1.0
