"""``MemoryStorage``: a vault held in a dict, for tests and throwaway vaults."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from comet.agent.storage.base import (
    ObjectInfo,
    ObjectNotFoundError,
    check_key,
    check_prefix,
    check_range,
)


class MemoryStorage:
    """Objects in a dict guarded by a lock. Nothing survives the process. ``clock``
    is the storage's own clock (the objects' storage times); tests move it."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, bytes] = {}
        self._times: dict[str, int] = {}
        self.clock = clock

    def put(self, key: str, data: bytes) -> None:
        check_key(key)
        blob = bytes(data)  # a caller's bytearray must not change the stored object later
        with self._lock:
            self._objects[key] = blob
            self._times[key] = self.clock()

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self._lookup(key)
        count = check_range(key, len(data), offset, length)
        return data[offset : offset + count]

    def stat(self, key: str) -> ObjectInfo:
        data = self._lookup(key)
        return ObjectInfo(key, len(data), self._times.get(key))

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)
            self._times.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        with self._lock:
            found = [
                ObjectInfo(k, len(v), self._times.get(k))
                for k, v in self._objects.items()
                if k.startswith(prefix)
            ]
        return iter(found)

    def remove_temporary(self, before_ns: int) -> tuple[str, ...]:
        return ()  # puts are atomic in memory

    def close(self) -> None:
        pass

    def _lookup(self, key: str) -> bytes:
        check_key(key)
        with self._lock:
            data = self._objects.get(key)
        if data is None:
            raise ObjectNotFoundError(f"object {key!r} does not exist")
        return data
