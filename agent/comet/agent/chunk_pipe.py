"""``ChunkPipe``: bytes written on a worker thread, read as chunks by a coroutine.

Bounded, so a slow reader (a pipe into ``less``) holds the writer back instead of
the agent buffering a whole snapshot; a cancelled token unblocks a waiting writer."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator

from comet.agent.cancel import CancelToken

_END = object()


class ChunkPipe:
    def __init__(self, cancel: CancelToken, *, chunk: int = 1 << 20, depth: int = 8) -> None:
        self._cancel = cancel
        self._chunk = chunk
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._buffer = bytearray()
        self._error: BaseException | None = None

    # --- the writing thread (a ByteSink) ----------------------------------------------

    def _put(self, item: object, *, final: bool = False) -> None:
        while True:
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if final and self._cancel.cancelled:
                    return  # nobody reads any more
                self._cancel.check()  # the reader went away

    def write(self, data: bytes, /) -> int:
        self._buffer += data
        if len(self._buffer) >= self._chunk:
            self._put(bytes(self._buffer))
            self._buffer.clear()
        return len(data)

    def flush(self) -> None:
        pass  # chunks go out when full and at close

    def close(self, error: BaseException | None = None) -> None:
        """The end of the stream (blocking): what is buffered, then the end, or
        ``error`` for the reader to raise."""
        self._error = error
        if self._buffer and error is None and not self._cancel.cancelled:
            self._put(bytes(self._buffer), final=True)
        self._buffer.clear()
        self._put(_END, final=True)

    # --- the reading coroutine --------------------------------------------------------

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the chunks; after the last, raise the writer's error if it had one."""
        while True:
            item = await asyncio.to_thread(self._queue.get)
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            assert isinstance(item, bytes)
            yield item
