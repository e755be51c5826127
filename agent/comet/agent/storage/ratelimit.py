"""``RateLimitedStorage``: caps the bytes per second that go to and come from any
Storage (the schedule's bandwidth limit). Shared by every thread using it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from comet.agent.storage.base import ObjectInfo, Storage


class TokenBucket:
    """Allows ``rate`` bytes per second on average, with bursts up to one second's
    worth. ``take`` blocks until the bytes are allowed."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("a rate limit must be positive")
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = rate
        self._last = clock()

    def take(self, count: int) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
            self._last = now
            self._tokens -= count
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)


class RateLimitedStorage:
    """Wraps ``inner``; object bodies sent by put and received by get are metered."""

    def __init__(
        self,
        inner: Storage,
        *,
        upload_bps: int = 0,
        download_bps: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self._up = TokenBucket(upload_bps, clock=clock, sleep=sleep) if upload_bps else None
        self._down = TokenBucket(download_bps, clock=clock, sleep=sleep) if download_bps else None

    def put(self, key: str, data: bytes) -> None:
        if self._up is not None:
            self._up.take(len(data))
        self.inner.put(key, data)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(key, offset, length)
        if self._down is not None:
            self._down.take(len(data))
        return data

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def remove_temporary(self, before_ns: int) -> tuple[str, ...]:
        return self.inner.remove_temporary(before_ns)

    def close(self) -> None:
        self.inner.close()
