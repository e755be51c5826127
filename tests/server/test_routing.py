"""Routing remote commands between two server instances through a real PostgreSQL:
each instance has its own registry, router and LISTEN connection; the device's
stream is a fake agent standing at the network edge."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from comet.server.errors import DeviceOfflineError
from comet.server.routing import (
    ANSWERED,
    COMMANDS_CHANNEL,
    REPLIES_CHANNEL,
    CommandQueue,
    NotificationListener,
    listener_name,
)
from comet.server.rpc.live import LiveConnection, LiveRegistry
from comet.server.rpc.routing import CommandRouter
from comet.server.store.accounts import AccountStore, Registration
from comet.v1 import control_pb2
from tests.server.conftest import KDF, FakeClock, auth_key

pytestmark = pytest.mark.timeout(60)


@dataclass
class Instance:
    name: str
    registry: LiveRegistry
    queue: CommandQueue
    router: CommandRouter
    listener: NotificationListener
    task: asyncio.Task[None]


@pytest.fixture
async def instances(
    engine: AsyncEngine, database_url: str, clock: FakeClock
) -> AsyncIterator[dict[str, Instance]]:
    made: dict[str, Instance] = {}
    for name in ("a", "b"):
        registry = LiveRegistry()
        queue = CommandQueue(engine, clock)
        router = CommandRouter(
            registry, instance_id=name, queue=queue, claim_timeout=2, poll_every=0.2
        )
        listener = NotificationListener(
            database_url,
            [COMMANDS_CHANNEL, REPLIES_CHANNEL],
            router.on_notify,
            on_connected=router.resync,
            application_name=listener_name(name),
            retry_min=0.2,
        )
        task = asyncio.create_task(listener.run_forever())
        made[name] = Instance(name, registry, queue, router, listener, task)
    for instance in made.values():
        await asyncio.wait_for(instance.listener.listening.wait(), 10)
    try:
        yield made
    finally:
        for instance in made.values():
            await instance.router.close()
            instance.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await instance.task


async def register_device(accounts: AccountStore) -> str:
    await accounts.create_user("alice", KDF, auth_key())
    result = await accounts.login(
        "alice",
        auth_key(),
        source="test",
        admin_session=False,
        registration=Registration(name="laptop"),
    )
    return result.device_id


async def fake_agent(connection: LiveConnection, *, answer: bool = True) -> None:
    """Answers every command with ``done`` (or never answers)."""
    while (message := await connection.outbox.get()) is not None:
        if answer and message.HasField("command"):
            connection.resolve(
                control_pb2.CommandReply(
                    request_id=message.command.request_id, done=control_pb2.Empty()
                )
            )


async def connect(
    instance: Instance, accounts: AccountStore, device_id: str, *, answer: bool = True
) -> tuple[LiveConnection, asyncio.Task[None]]:
    connection = LiveConnection(device_id=device_id, user_id="u")
    instance.registry.register(connection)
    await accounts.mark_connected(device_id, instance.name)
    return connection, asyncio.create_task(fake_agent(connection, answer=answer))


def refetch() -> control_pb2.Command:
    return control_pb2.Command(refetch_profile=control_pb2.Empty())


async def test_a_command_reaches_the_device_through_the_instance_holding_its_stream(
    instances: dict[str, Instance], accounts: AccountStore
) -> None:
    device = await register_device(accounts)
    _, agent = await connect(instances["b"], accounts, device)
    reply = await instances["a"].router.send(device, refetch(), timeout=10)
    assert reply.HasField("done") and reply.request_id
    outcome = await instances["a"].queue.outcome(reply.request_id)
    assert outcome.status == ANSWERED
    # The holder itself delivers locally, without the table.
    local = await instances["b"].router.send(device, refetch(), timeout=10)
    assert local.HasField("done")
    assert (await instances["a"].queue.outcome(local.request_id)).status != ANSWERED
    agent.cancel()


async def test_a_device_connected_nowhere_fails_clearly(
    instances: dict[str, Instance], accounts: AccountStore
) -> None:
    device = await register_device(accounts)
    with pytest.raises(DeviceOfflineError, match=f"device {device} is not connected"):
        await instances["a"].router.send(device, refetch(), timeout=10)
    with pytest.raises(DeviceOfflineError, match="device nope is not connected"):
        await instances["a"].router.send("nope", refetch(), timeout=10)


async def test_a_stale_holder_that_stopped_is_reported_not_waited_for(
    instances: dict[str, Instance], accounts: AccountStore
) -> None:
    device = await register_device(accounts)
    await accounts.mark_connected(device, "gone")
    with pytest.raises(DeviceOfflineError, match="has stopped"):
        await instances["a"].router.send(device, refetch(), timeout=10)


async def test_no_reply_in_time_is_a_timeout_naming_the_device(
    instances: dict[str, Instance], accounts: AccountStore
) -> None:
    device = await register_device(accounts)
    _, agent = await connect(instances["b"], accounts, device, answer=False)
    with pytest.raises(DeviceOfflineError, match=f"device {device} did not reply within 1 s"):
        await instances["a"].router.send(device, refetch(), timeout=1)
    agent.cancel()


async def test_close_and_drop_reach_the_holding_instance(
    instances: dict[str, Instance], accounts: AccountStore
) -> None:
    device = await register_device(accounts)
    _, agent = await connect(instances["b"], accounts, device)
    await instances["a"].router.close_everywhere(device)
    await asyncio.wait_for(agent, 5)  # the stream's outbox got its end marker
    assert instances["b"].registry.get(device) is None

    _, agent = await connect(instances["b"], accounts, device)
    await instances["a"].router.drop(device)
    await asyncio.wait_for(agent, 5)


async def test_commands_announced_while_the_listener_was_away_are_delivered(
    instances: dict[str, Instance], accounts: AccountStore
) -> None:
    device = await register_device(accounts)
    _, agent = await connect(instances["b"], accounts, device)
    b = instances["b"]
    b.listener.listening.clear()
    await b.listener.drop_connection()
    command = refetch()
    command.request_id = "while-away"
    await instances["a"].queue.submit(
        request_id="while-away",
        device_id=device,
        origin="a",
        target="b",
        command=command.SerializeToString(),
        timeout_seconds=5,
    )
    await asyncio.wait_for(b.listener.listening.wait(), 10)

    async def answered() -> None:
        while (await b.queue.outcome("while-away")).status != ANSWERED:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(answered(), 10)
    # And the reconnected listener keeps routing.
    reply = await instances["a"].router.send(device, refetch(), timeout=10)
    assert reply.HasField("done")
    agent.cancel()
