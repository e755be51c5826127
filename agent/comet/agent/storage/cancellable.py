"""``CancellableStorage``: refuses new transfers once a job is cancelled, so a cancel
reaches the upload threads of a backup at their next object, and stops waiting for a
large upload in progress within a fraction of a second (the abandoned object, an
unindexed pack, is left for prune, which spares young unindexed packs). Deletes (a lock
being released) and listings always go through; so does anything the job's own thread
does inside ``CancelToken.shielded`` (writing a checkpoint index)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

from comet.agent.cancel import CancelToken
from comet.agent.storage.base import ObjectInfo, Storage, put_file

WATCHED_PUT = 1 << 20  # objects larger than this are uploaded on a watched thread
POLL = 0.25  # seconds between looks at the token while such an upload runs


class CancellableStorage:
    """Wraps ``inner``; put and get raise CancelledError after ``cancel`` fires."""

    def __init__(self, inner: Storage, cancel: CancelToken) -> None:
        self.inner = inner
        self._cancel = cancel

    def put(self, key: str, data: bytes) -> None:
        self._cancel.check()
        if len(data) <= WATCHED_PUT:
            self.inner.put(key, data)
            return
        self._watched(lambda: self.inner.put(key, data))

    def put_file(self, key: str, fd: int, size: int) -> None:
        self._cancel.check()
        # The upload may outlive this call (a cancel abandons it) and the caller then
        # closes ``fd``: the thread copies from a descriptor of its own.
        own = os.dup(fd)

        def upload() -> None:
            try:
                put_file(self.inner, key, own, size)
            finally:
                os.close(own)

        self._watched(upload)

    def _watched(self, call: Callable[[], None]) -> None:
        """Run an upload on a thread of its own, raising CancelledError as soon as the
        token fires (the upload is abandoned, not waited for)."""
        done = threading.Event()
        failure: list[BaseException] = []

        def upload() -> None:
            try:
                call()
            except BaseException as e:
                failure.append(e)
            finally:
                done.set()

        threading.Thread(target=upload, name="comet-watched-put", daemon=True).start()
        while not done.wait(POLL):
            self._cancel.check()
        if failure:
            raise failure[0]

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        self._cancel.check()
        return self.inner.get(key, offset, length)

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
