"""``CancellableStorage``: refuses new transfers once a job is cancelled, so a cancel
reaches the upload threads of a backup at their next object. Deletes (a lock being
released) and listings always go through; so does anything the job's own thread does
inside ``CancelToken.shielded`` (writing a checkpoint index)."""

from __future__ import annotations

from collections.abc import Iterator

from comet.agent.cancel import CancelToken
from comet.agent.storage.base import ObjectInfo, Storage


class CancellableStorage:
    """Wraps ``inner``; put and get raise CancelledError after ``cancel`` fires."""

    def __init__(self, inner: Storage, cancel: CancelToken) -> None:
        self.inner = inner
        self._cancel = cancel

    def put(self, key: str, data: bytes) -> None:
        self._cancel.check()
        self.inner.put(key, data)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        self._cancel.check()
        return self.inner.get(key, offset, length)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def close(self) -> None:
        self.inner.close()
