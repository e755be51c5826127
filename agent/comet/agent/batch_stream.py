"""``batches_from_thread``: hand lists produced on a worker thread to an async reader,
a bounded number ahead, so a listing of any size streams in flat memory."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class ReaderGone(Exception):
    """Raised in the producer's thread by ``hand`` once the reader has stopped."""


async def batches_from_thread(
    run: Callable[[Callable[[T], None]], Awaitable[None]], *, ahead: int = 4
) -> AsyncGenerator[T, None]:
    """Yield every list the producer hands over, in order. ``run(hand)`` is awaited in
    a task; it runs the producer on a worker thread (``asyncio.to_thread``), which calls
    ``hand(batch)`` for each batch. ``hand`` blocks while ``ahead`` batches wait for the
    reader, and raises ReaderGone once the reader has stopped (the producer lets it
    propagate: the walk ends quietly). An exception of the producer is raised here."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Queue[T | BaseException | None] = asyncio.Queue(ahead)
    stopped = threading.Event()

    def hand(batch: T) -> None:
        if stopped.is_set():
            raise ReaderGone
        asyncio.run_coroutine_threadsafe(ready.put(batch), loop).result()

    async def produce() -> None:
        end: BaseException | None = None
        try:
            await run(hand)
        except ReaderGone:
            pass
        except Exception as e:  # handed to the reader, which raises it
            end = e
        await ready.put(end)

    producer = asyncio.create_task(produce())
    try:
        while (item := await ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stopped.set()
        while not producer.done():  # release a pending hand-over, then wait for the end
            while not ready.empty():
                ready.get_nowait()
            await asyncio.wait({producer}, timeout=0.05)
