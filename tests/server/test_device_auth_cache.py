"""Device credentials are remembered for a few seconds; revocation through this
instance takes effect at once, through another one within that bound."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from comet.server.errors import AuthenticationError
from comet.server.store.accounts import AccountStore, LoginPolicy, Role
from comet.server.store.credential_cache import DEFAULT_TTL
from comet.v1 import admin_pb2
from tests.server.conftest import KDF, FakeClock, RpcServer, auth_key, expect_error
from tests.server.test_jobs import report

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements the engine runs from now on."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", record)


async def login(accounts: AccountStore, *, device_id: str = "") -> tuple[str, str]:
    result = await accounts.login(
        "alice", auth_key(), source="", admin_session=False, device_id=device_id
    )
    return result.device_id, result.device_token


async def test_a_checked_credential_is_not_looked_up_again_for_a_while(
    accounts: AccountStore, clock: FakeClock, statements: list[str]
) -> None:
    await accounts.create_user("alice", KDF, auth_key())
    device_id, token = await login(accounts)
    statements.clear()
    assert (await accounts.authenticate_device(token)).device_id == device_id
    looked_up = len(statements)
    assert looked_up > 0
    clock.advance(seconds=DEFAULT_TTL.total_seconds() - 1)
    assert (await accounts.authenticate_device(token)).device_id == device_id
    assert len(statements) == looked_up  # answered from memory
    clock.advance(seconds=1)
    await accounts.authenticate_device(token)
    assert len(statements) > looked_up  # expired: asked the database again


async def test_revoking_here_refuses_the_device_at_once(
    accounts: AccountStore,
) -> None:
    await accounts.create_user("alice", KDF, auth_key())
    device_id, token = await login(accounts)
    await accounts.authenticate_device(token)  # remembered
    await accounts.revoke_device(device_id)
    with pytest.raises(AuthenticationError, match="revoked"):
        await accounts.authenticate_device(token)


async def test_revoking_on_another_instance_is_honoured_within_the_bound(
    accounts: AccountStore, engine: AsyncEngine, clock: FakeClock
) -> None:
    other = AccountStore(engine, clock, LoginPolicy())  # a second server instance
    await accounts.create_user("alice", KDF, auth_key())
    device_id, token = await login(accounts)
    await accounts.authenticate_device(token)  # remembered here
    await other.revoke_device(device_id)
    # The documented bound: remembered for at most DEFAULT_TTL after the check.
    await accounts.authenticate_device(token)
    clock.advance(seconds=DEFAULT_TTL.total_seconds())
    with pytest.raises(AuthenticationError, match="revoked"):
        await accounts.authenticate_device(token)


async def test_a_rotated_credential_or_a_deleted_user_is_refused_at_once(
    accounts: AccountStore,
) -> None:
    await accounts.create_user("alice", KDF, auth_key())
    device_id, old_token = await login(accounts)
    await accounts.authenticate_device(old_token)
    _, new_token = await login(accounts, device_id=device_id)  # rotates the credential
    with pytest.raises(AuthenticationError, match="unknown device credential"):
        await accounts.authenticate_device(old_token)
    await accounts.authenticate_device(new_token)
    await accounts.delete_user("alice")
    with pytest.raises(AuthenticationError, match="unknown device credential"):
        await accounts.authenticate_device(new_token)


async def test_a_revoked_device_cannot_report_jobs(rpc: RpcServer) -> None:
    await rpc.add_user("alice")
    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    alice = await rpc.device("alice")
    root = await rpc.session("root")
    await rpc.agent.ReportJob(report("j1", progress=1), metadata=alice.metadata)
    await rpc.admin.RevokeDevice(
        admin_pb2.RevokeDeviceRequest(device_id=alice.device_id), metadata=root.metadata
    )
    await expect_error(
        rpc.agent.ReportJob(report("j1", progress=2), metadata=alice.metadata),
        grpc.StatusCode.UNAUTHENTICATED,
        "revoked",
    )
