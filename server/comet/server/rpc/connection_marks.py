"""Records which instance holds each device's live connection, in batches.

When thousands of agents reconnect at once (a server restart), one UPDATE per
connection costs more than the connection itself. Marks are queued and written by one
writer, as many per statement as have queued up meanwhile (none waits for a timer). A
connection is accepted only once its mark is written, so routing from another
instance finds it as soon as the agent considers itself connected. Marks of one
device keep their order (a disconnect and the reconnect that follows)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from comet.server.store.accounts import AccountStore

log = logging.getLogger(__name__)

MAX_BATCH = 1000


@dataclass
class _Mark:
    device_id: str
    connected: bool
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ConnectionMarks:
    def __init__(self, accounts: AccountStore, instance_id: str) -> None:
        self._accounts = accounts
        self._instance = instance_id
        self._queue: list[_Mark] = []
        self._writer: asyncio.Task[None] | None = None

    async def connected(self, device_id: str) -> None:
        """Returns once the mark is written; raises what the write raised."""
        await self._add(_Mark(device_id, True))

    async def disconnected(self, device_id: str) -> None:
        await self._add(_Mark(device_id, False))

    async def _add(self, mark: _Mark) -> None:
        self._queue.append(mark)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        await asyncio.shield(mark.done)

    async def _write_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            for run in _runs(batch):
                ids = list(dict.fromkeys(m.device_id for m in run))
                try:
                    if run[0].connected:
                        await self._accounts.mark_connected_many(ids, self._instance)
                    else:
                        await self._accounts.mark_disconnected_many(ids, self._instance)
                except Exception as e:
                    for mark in run:
                        if not mark.done.done():
                            mark.done.set_exception(e)
                    continue
                for mark in run:
                    if not mark.done.done():
                        mark.done.set_result(None)


def _future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


def _runs(batch: list[_Mark]) -> list[list[_Mark]]:
    """Consecutive marks of the same kind, in order."""
    runs: list[list[_Mark]] = []
    for mark in batch:
        if runs and runs[-1][0].connected == mark.connected:
            runs[-1].append(mark)
        else:
            runs.append([mark])
    return runs
