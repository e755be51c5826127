"""Revocations reach the credential memory of another instance through PostgreSQL
NOTIFY, not after the memory's timeout; an instance whose listener was away forgets
everything it remembered, since it may have missed some."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from comet.server.app import notification_listener
from comet.server.errors import AuthenticationError
from comet.server.routing import NotificationListener
from comet.server.rpc.live import LiveRegistry
from comet.server.rpc.routing import CommandRouter
from comet.server.store.accounts import AccountStore, LoginPolicy
from tests.server.conftest import KDF, FakeClock, auth_key

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def other(engine: AsyncEngine, clock: FakeClock) -> AccountStore:
    """The same database seen from a second server instance (the fake clock never
    moves, so nothing it remembers ever expires by itself)."""
    return AccountStore(engine, clock, LoginPolicy())


@pytest.fixture
async def listener(database_url: str, other: AccountStore) -> AsyncIterator[NotificationListener]:
    router = CommandRouter(LiveRegistry(), instance_id="other")
    listener = notification_listener(database_url, other, router, application_name="test")
    task = asyncio.create_task(listener.run_forever())
    await asyncio.wait_for(listener.listening.wait(), timeout=10)
    try:
        yield listener
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def refused_within(store: AccountStore, token: str, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            await store.authenticate_device(token)
        except AuthenticationError:
            return
        assert asyncio.get_running_loop().time() < deadline, "still accepted"
        await asyncio.sleep(0.01)


async def test_a_revocation_elsewhere_is_heard_at_once(
    accounts: AccountStore, other: AccountStore, listener: NotificationListener
) -> None:
    await accounts.create_user("alice", KDF, auth_key())
    result = await accounts.login("alice", auth_key(), source="", admin_session=False)
    await other.authenticate_device(result.device_token)  # remembered there
    await accounts.revoke_device(result.device_id)
    await refused_within(other, result.device_token, 1.0)


async def test_a_deleted_user_is_heard_at_once(
    accounts: AccountStore, other: AccountStore, listener: NotificationListener
) -> None:
    await accounts.create_user("alice", KDF, auth_key())
    result = await accounts.login("alice", auth_key(), source="", admin_session=False)
    await other.authenticate_device(result.device_token)
    await accounts.delete_user("alice")
    await refused_within(other, result.device_token, 1.0)


async def test_a_listener_that_was_away_forgets_what_it_remembered(
    accounts: AccountStore, other: AccountStore, listener: NotificationListener
) -> None:
    await accounts.create_user("alice", KDF, auth_key())
    result = await accounts.login("alice", auth_key(), source="", admin_session=False)
    await other.authenticate_device(result.device_token)
    await listener.drop_connection()  # the revocation below is not heard...
    await accounts.revoke_device(result.device_id)
    # ...but reconnecting (after its back-off) clears what it remembered.
    await refused_within(other, result.device_token, 5.0)
