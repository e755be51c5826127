from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from comet.agent.credentials import KdfParams, derive_login_secrets
from comet.server.app import Stores, add_services, grpc_server, open_stores
from comet.server.config import ServerConfig
from comet.server.rpc.live import LiveRegistry
from comet.server.secret_box import SecretBox
from comet.server.store.accounts import AccountStore, LoginPolicy, Role
from comet.server.store.database import create_engine, sqlalchemy_url
from comet.v1 import admin_pb2_grpc, control_pb2, control_pb2_grpc

# A cheap KDF: these tests exercise the server, not the password hashing cost.
KDF = KdfParams.new(log2_n=10)
PASSWORD = "password-1"


def auth_key(password: str = PASSWORD) -> bytes:
    return derive_login_secrets(password, KDF).auth_key


@dataclass
class FakeClock:
    current: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        self.current += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def secret_box() -> SecretBox:
    return SecretBox(os.urandom(32))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=4)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def index_only(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine whose sessions may not read a table from end to end: a query
    answers from an index or not at all (which index: EXPLAIN)."""
    engine = create_async_engine(
        sqlalchemy_url(database_url), connect_args={"options": "-c enable_seqscan=off"}
    )
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def accounts(engine: AsyncEngine, clock: FakeClock, secret_box: SecretBox) -> AccountStore:
    return AccountStore(
        engine,
        clock,
        LoginPolicy(session_hours=1, max_failed_logins=3, failed_login_window_seconds=600),
        box=secret_box,
    )


TEST_CONFIG = ServerConfig(
    data_dir=Path("/nonexistent"),
    session_hours=1,
    max_failed_logins=3,
    failed_login_window_seconds=600,
)


@pytest.fixture
def stores(engine: AsyncEngine, clock: FakeClock, secret_box: SecretBox) -> Stores:
    return open_stores(engine, clock, TEST_CONFIG, secret_box)


@dataclass
class Session:
    """A logged-in caller: its credential as call metadata, and who it is."""

    metadata: tuple[tuple[str, str], ...]
    username: str
    device_id: str = ""


@dataclass
class RpcServer:
    """A real in-process grpc.aio server on a free loopback port, with stubs."""

    stores: Stores
    registry: LiveRegistry
    target: str
    auth: control_pb2_grpc.AuthServiceStub
    agent: control_pb2_grpc.AgentServiceStub
    admin: admin_pb2_grpc.AdminServiceStub

    async def add_user(
        self, name: str, *, role: Role = Role.USER, password: str = PASSWORD
    ) -> None:
        await self.stores.accounts.create_user(name, KDF, auth_key(password), role=role)

    async def device(
        self, name: str, *, device_name: str = "laptop", os: str = "linux", totp: str = ""
    ) -> Session:
        reply = await self.auth.Login(
            control_pb2.LoginRequest(
                username=name,
                auth_key=auth_key(),
                totp_code=totp,
                registration=control_pb2.DeviceRegistration(
                    name=device_name, os=os, timezone="UTC"
                ),
            )
        )
        return Session((("authorization", f"Bearer {reply.device_token}"),), name, reply.device_id)

    async def session(self, name: str, *, admin: bool = True, totp: str = "") -> Session:
        reply = await self.auth.Login(
            control_pb2.LoginRequest(
                username=name, auth_key=auth_key(), admin_session=admin, totp_code=totp
            )
        )
        return Session((("authorization", f"Bearer {reply.session_token}"),), name)


@pytest.fixture
async def rpc(stores: Stores) -> AsyncIterator[RpcServer]:
    server = grpc_server()
    registry = LiveRegistry()
    add_services(server, stores, registry, instance_id="test", heartbeat_seconds=15)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    target = f"127.0.0.1:{port}"
    channel = grpc.aio.insecure_channel(target)
    try:
        yield RpcServer(
            stores,
            registry,
            target,
            control_pb2_grpc.AuthServiceStub(channel),
            control_pb2_grpc.AgentServiceStub(channel),
            admin_pb2_grpc.AdminServiceStub(channel),
        )
    finally:
        await channel.close()
        await server.stop(0)


async def expect_error(call: Awaitable[object], code: grpc.StatusCode, text: str) -> str:
    """Awaits a call that must fail with ``code`` and a message containing ``text``."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    details = info.value.details() or ""
    assert text in details, details
    return details
