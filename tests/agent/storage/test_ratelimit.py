"""The bandwidth limit wrapper meters object bodies with a token bucket."""

from __future__ import annotations

import pytest

from comet.agent.storage.memory import MemoryStorage
from comet.agent.storage.ratelimit import RateLimitedStorage, TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_uploads_are_held_to_the_rate_after_a_one_second_burst() -> None:
    t = FakeTime()
    storage = RateLimitedStorage(MemoryStorage(), upload_bps=1000, clock=t.clock, sleep=t.sleep)
    storage.put("a", b"x" * 1000)  # the burst allowance
    assert t.sleeps == []
    storage.put("b", b"x" * 500)
    storage.put("c", b"x" * 500)
    assert sum(t.sleeps) == pytest.approx(1.0)
    assert storage.get("b") == b"x" * 500  # downloads are unlimited here
    assert sum(t.sleeps) == pytest.approx(1.0)


def test_downloads_are_metered_separately() -> None:
    t = FakeTime()
    inner = MemoryStorage()
    inner.put("k", b"y" * 3000)
    storage = RateLimitedStorage(inner, download_bps=1000, clock=t.clock, sleep=t.sleep)
    assert storage.get("k") == b"y" * 3000
    assert sum(t.sleeps) == pytest.approx(2.0)
    assert [o.key for o in storage.list("")] == ["k"]


def test_idle_time_refills_the_bucket_but_not_beyond_one_second() -> None:
    t = FakeTime()
    bucket = TokenBucket(100, clock=t.clock, sleep=t.sleep)
    bucket.take(100)
    t.now += 60
    bucket.take(100)
    assert t.sleeps == []
    bucket.take(50)
    assert sum(t.sleeps) == pytest.approx(0.5)


def test_a_non_positive_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
