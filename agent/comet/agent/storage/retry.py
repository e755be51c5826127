"""``RetryingStorage``: retries transient failures of any Storage with jittered
exponential backoff. The one place in the agent where storage calls are retried."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from comet.agent.storage.base import ObjectInfo, Storage, TransientStorageError

_T = TypeVar("_T")


class RetryingStorage:
    """Wraps ``inner``; each call is tried up to ``attempts`` times while it raises
    TransientStorageError, and any other error is raised at once.

    Before retry ``n`` (1-based) it sleeps a random time in ``[d/2, d]`` where
    ``d = min(max_delay, base_delay * 2**(n-1))``, so delays grow but concurrent
    clients do not retry in step. ``sleep`` and ``rng`` are injectable for tests.
    """

    def __init__(
        self,
        inner: Storage,
        *,
        attempts: int = 5,
        base_delay: float = 0.2,
        max_delay: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self.inner = inner
        self._attempts = attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._rng = rng or random.Random()

    def put(self, key: str, data: bytes) -> None:
        self._call(lambda: self.inner.put(key, data))

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._call(lambda: self.inner.get(key, offset, length))

    def stat(self, key: str) -> ObjectInfo:
        return self._call(lambda: self.inner.stat(key))

    def delete(self, key: str) -> None:
        self._call(lambda: self.inner.delete(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # A listing that fails halfway cannot be resumed without yielding some objects
        # twice, so the whole listing is one attempt.
        items = self._call(lambda: [*self.inner.list(prefix)])
        return iter(items)

    def remove_temporary(self, before_ns: int) -> tuple[str, ...]:
        return self._call(lambda: self.inner.remove_temporary(before_ns))

    def close(self) -> None:
        self.inner.close()

    def delay(self, retry: int) -> float:
        """The time to sleep before retry number ``retry`` (1-based)."""
        cap = min(self._max_delay, self._base_delay * 2.0 ** (retry - 1))
        return cap / 2 + self._rng.uniform(0, cap / 2)

    def _call(self, fn: Callable[[], _T]) -> _T:
        for retry in range(1, self._attempts):
            try:
                return fn()
            except TransientStorageError:
                self._sleep(self.delay(retry))
        return fn()
