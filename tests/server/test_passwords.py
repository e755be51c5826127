"""The password-hash pool: off the event loop, bounded, same cost for strangers."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from comet.server.errors import ThrottledError
from comet.server.passwords import AuthKeyHasher

pytestmark = pytest.mark.timeout(30)


async def test_hashes_run_off_the_loop_and_the_queue_is_bounded() -> None:
    hasher = AuthKeyHasher(workers=1, queue_limit=3)
    key = os.urandom(32)
    stored = await hasher.hash(key)
    assert await hasher.verify(key, stored)
    assert not await hasher.verify(os.urandom(32), stored)
    assert not await hasher.verify(key, None)  # a stranger: the decoy never matches

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    results = await asyncio.gather(
        *(hasher.verify(key, stored) for _ in range(4)), return_exceptions=True
    )
    elapsed = time.monotonic() - started
    ticking.cancel()
    hasher.close()
    assert results.count(True) == 3
    assert [type(r) for r in results if r is not True] == [ThrottledError]
    # The loop kept ticking while three hashes ran one after another.
    assert ticks >= elapsed / 0.005 * 0.5, (ticks, elapsed)
