"""Every failure of an RPC reaches the client as a gRPC code and one sentence: no
Python, SQL or driver text, never UNKNOWN; a bug is INTERNAL with an error id that
the server log ties to the traceback."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator

import grpc
import pytest

from comet.server.app import Stores, add_services, grpc_server, open_stores
from comet.server.rpc.errors import DATABASE_UNAVAILABLE, ERROR_ID_KEY
from comet.server.rpc.live import LiveRegistry
from comet.server.secret_box import SecretBox
from comet.server.store.database import create_engine
from comet.server.store.jobs import JobStore
from comet.v1 import control_pb2, control_pb2_grpc
from tests.server.conftest import TEST_CONFIG, FakeClock, RpcServer, Session


@pytest.fixture
async def alice(rpc: RpcServer) -> Session:
    await rpc.add_user("alice")
    return await rpc.device("alice")


async def test_an_undecodable_request_is_invalid_argument(rpc: RpcServer) -> None:
    channel = grpc.aio.insecure_channel(rpc.target)
    try:
        raw = channel.unary_unary("/comet.v1.AuthService/PreLogin")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await raw(b"\xff\xff\xff\xff")  # a truncated varint: not a message
    finally:
        await channel.close()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        "the request could not be decoded: it is not a valid message for this call"
    )


async def test_a_bug_is_internal_with_an_error_id_in_the_log(
    rpc: RpcServer,
    alice: Session,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(self: JobStore, **_: object) -> int:
        raise RuntimeError('SELECT secret FROM "jobs" -- psycopg internals')

    monkeypatch.setattr(JobStore, "report", broken)
    job = control_pb2.JobReport()
    job.job.job_id = "j1"
    with caplog.at_level(logging.ERROR), pytest.raises(grpc.aio.AioRpcError) as info:
        await rpc.agent.ReportJob(job, metadata=alice.metadata)
    error = info.value
    details = error.details() or ""
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "\n" not in details and "SELECT" not in details and "RuntimeError" not in details
    error_id = dict(error.trailing_metadata() or ())[ERROR_ID_KEY]
    assert f"error id {error_id}" in details
    [record] = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.exc_info is not None and "SELECT secret" in str(record.exc_info[1])


@pytest.fixture
async def unreachable() -> AsyncIterator[control_pb2_grpc.AuthServiceStub]:
    """A server whose database does not answer (nothing listens on its port)."""
    engine = create_engine("postgresql://comet:x@127.0.0.1:9/comet", pool_size=1)
    stores: Stores = open_stores(engine, FakeClock(), TEST_CONFIG, SecretBox(os.urandom(32)))
    server = grpc_server()
    add_services(server, stores, LiveRegistry(), instance_id="t", heartbeat_seconds=15)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield control_pb2_grpc.AuthServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(0)
        await engine.dispose()


async def test_an_unreachable_database_is_unavailable_in_one_line(
    unreachable: control_pb2_grpc.AuthServiceStub,
) -> None:
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await unreachable.PreLogin(control_pb2.PreLoginRequest(username="alice"), timeout=20)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert info.value.details() == DATABASE_UNAVAILABLE
