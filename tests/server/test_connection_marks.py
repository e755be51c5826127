"""Live-connection marks are batched, in order per device, and a failed write fails
the connections that waited for it."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from comet.server.routing import CommandQueue
from comet.server.rpc.connection_marks import ConnectionMarks
from comet.server.store.accounts import AccountStore
from tests.server.conftest import FakeClock, RpcServer


async def test_marks_are_written_in_batches_and_in_order(
    rpc: RpcServer, accounts: AccountStore, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rpc.add_user("alice")
    devices = [(await rpc.device("alice", device_name=f"d{i}")).device_id for i in range(5)]
    queue = CommandQueue(engine, FakeClock())
    statements: list[tuple[str, int]] = []
    real_connected = AccountStore.mark_connected_many
    real_disconnected = AccountStore.mark_disconnected_many

    async def connected(self: AccountStore, ids: list[str], instance: str) -> None:
        statements.append(("connected", len(ids)))
        await real_connected(self, ids, instance)

    async def disconnected(self: AccountStore, ids: list[str], instance: str) -> None:
        statements.append(("disconnected", len(ids)))
        await real_disconnected(self, ids, instance)

    monkeypatch.setattr(AccountStore, "mark_connected_many", connected)
    monkeypatch.setattr(AccountStore, "mark_disconnected_many", disconnected)
    marks = ConnectionMarks(accounts, "instance-a")
    # A storm: five connect at once, then the first drops and comes straight back.
    await asyncio.gather(*(marks.connected(d) for d in devices))
    await asyncio.gather(marks.disconnected(devices[0]), marks.connected(devices[0]))
    assert statements == [
        ("connected", 5),  # one statement for all that queued up together
        ("disconnected", 1),
        ("connected", 1),
    ]
    assert [await queue.holder(d) for d in devices] == ["instance-a"] * 5

    async def broken(self: AccountStore, ids: list[str], instance: str) -> None:
        raise ConnectionRefusedError("the database is away")

    monkeypatch.setattr(AccountStore, "mark_connected_many", broken)
    with pytest.raises(ConnectionRefusedError):
        await marks.connected(devices[1])
    monkeypatch.setattr(AccountStore, "mark_connected_many", connected)
    await marks.connected(devices[1])  # the writer recovers
