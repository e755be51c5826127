"""The password-hash pool: off the event loop, bounded, same cost for strangers."""

from __future__ import annotations

import asyncio
import os

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

    # The loop keeps running while a hash runs: it gets round many times before the
    # hash is done (on the loop, the hash would finish within one step).
    task = asyncio.ensure_future(hasher.verify(key, stored))
    steps = 0
    while not task.done():
        await asyncio.sleep(0)
        steps += 1
    assert await task and steps >= 50, steps

    results = await asyncio.gather(
        *(hasher.verify(key, stored) for _ in range(4)), return_exceptions=True
    )
    hasher.close()
    assert results.count(True) == 3
    assert [type(r) for r in results if r is not True] == [ThrottledError]
