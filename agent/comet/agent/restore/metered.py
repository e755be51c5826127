"""``MeteredStorage``: a Storage wrapper that counts reads, so a restore reports the
bytes it really fetched from the vault (and tests and benchmarks can count GETs)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from comet.agent.storage.base import ObjectInfo, Storage


class MeteredStorage:
    """Passes every call to ``inner``; counts ``get`` calls and the bytes they return.
    Thread-safe (the restore reads on a worker thread)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.gets = 0
        self.bytes_read = 0

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(key, offset, length)
        with self._lock:
            self.gets += 1
            self.bytes_read += len(data)
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
