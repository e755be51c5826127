"""batches_from_thread: a worker thread's batches reach an async reader in order, at
most ``ahead`` of it, and the thread stops soon after the reader does."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest

from comet.agent.batch_stream import batches_from_thread

Run = Callable[[Callable[[list[int]], None]], Awaitable[None]]


def _producer(
    count: int, made: list[int], fail_at: int | None = None, ended: threading.Event | None = None
) -> Run:
    async def run(hand: Callable[[list[int]], None]) -> None:
        def work() -> None:
            try:
                for i in range(count):
                    if i == fail_at:
                        raise ValueError(f"broken at {i}")
                    made.append(i)
                    hand([i, i])
            finally:
                if ended is not None:
                    ended.set()

        await asyncio.to_thread(work)

    return run


async def test_every_batch_arrives_in_order() -> None:
    made: list[int] = []
    got = [batch async for batch in batches_from_thread(_producer(50, made), ahead=2)]
    assert got == [[i, i] for i in range(50)] and made == list(range(50))


async def test_the_thread_runs_at_most_ahead_and_stops_with_the_reader() -> None:
    made: list[int] = []
    ended = threading.Event()
    batches = batches_from_thread(_producer(10_000, made, ended=ended), ahead=3)
    first = await anext(batches)
    await asyncio.sleep(0.2)  # the producer fills the queue, then waits
    assert first == [0, 0] and len(made) <= 1 + 3 + 1
    await batches.aclose()  # returns once the thread has ended
    assert ended.is_set() and len(made) <= 1 + 3 + 2


async def test_a_producer_error_reaches_the_reader_after_the_good_batches() -> None:
    made: list[int] = []
    got: list[list[int]] = []
    with pytest.raises(ValueError, match="broken at 5"):
        async for batch in batches_from_thread(_producer(10, made, fail_at=5), ahead=2):
            got.append(batch)
    assert got == [[i, i] for i in range(5)]
