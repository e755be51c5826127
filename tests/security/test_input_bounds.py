"""Hostile input from callers who have not logged in, against a real comet-server
process: oversized, malformed and undecodable requests get a plain
INVALID_ARGUMENT or RESOURCE_EXHAUSTED, never database or Python text, leave no
audit rows behind and leave the server's memory where it was."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg
import pytest

from comet.v1 import admin_pb2, control_pb2
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import ServerProcess, free_port, run_cli
from tests.security.throttle_fixtures import (
    Client,
    GuardedServer,
    auth_key,
    guarded_server,
)

__all__ = ["guarded_server"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(120)
MB = 1024 * 1024
# Text that would mean internals reached the client.
LEAKS = (
    "select ",
    "insert ",
    "sqlalchemy",
    "psycopg",
    "traceback",
    "decodeerror",
    "exception",
    "ix_",
    "parameters",
    'file "',
    "\x00",
)
LOGIN = "/comet.v1.AuthService/Login"
PRELOGIN = "/comet.v1.AuthService/PreLogin"


def refused(call: object, *args: object, **kwargs: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    code: grpc.StatusCode = info.value.code()  # type: ignore[attr-defined]
    details: str = info.value.details() or ""  # type: ignore[attr-defined]
    assert not any(leak in details.lower() for leak in LEAKS), details
    assert len(details) < 300, details
    return code, details


def audit_rows(server: GuardedServer) -> int:
    with psycopg.connect(server.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM audit_events").fetchone()
    assert row is not None
    return int(row[0])


def login_request(username: str, **kwargs: object) -> control_pb2.LoginRequest:
    fields: dict[str, object] = {"auth_key": auth_key("password-1"), **kwargs}
    return control_pb2.LoginRequest(username=username, **fields)  # type: ignore[arg-type]


def test_hostile_usernames_and_fields_are_refused_before_the_database(
    guarded_server: GuardedServer,
) -> None:
    client = Client(guarded_server.direct)
    before = audit_rows(guarded_server)
    too_big = grpc.StatusCode.RESOURCE_EXHAUSTED
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    cases: list[tuple[str, object, grpc.StatusCode]] = [
        ("10 MB username, pre-login", control_pb2.PreLoginRequest(username="a" * 10 * MB), too_big),
        ("10 MB username, login", login_request("a" * 10 * MB), too_big),
        ("300 KB username", login_request("b" * 300 * 1024), too_big),
        (
            "NUL in a username, pre-login",
            control_pb2.PreLoginRequest(username="ali\x00ce"),
            invalid,
        ),
        ("NUL in a username", login_request("ali\x00ce"), invalid),
        ("256-character username", login_request("c" * 256), invalid),
        (
            "control character in a device name",
            login_request("alice", registration=control_pb2.DeviceRegistration(name="lap\x1btop")),
            invalid,
        ),
        (
            "control character in the OS name",
            login_request("alice", registration=control_pb2.DeviceRegistration(os="linux\x07")),
            invalid,
        ),
        ("1 KB auth key", login_request("alice", auth_key=b"k" * 1024), invalid),
        ("letters as a two-factor code", login_request("alice", totp_code="abcdef"), invalid),
        ("long device id", login_request("alice", device_id="d" * 1000), invalid),
    ]
    for what, request, expected in cases:
        call = (
            client.auth.PreLogin
            if isinstance(request, control_pb2.PreLoginRequest)
            else client.auth.Login
        )
        code, details = refused(call, request, timeout=30)
        assert code == expected, (what, code, details)
    assert audit_rows(guarded_server) == before  # nothing reached the database
    client.close()


def test_undecodable_requests_are_invalid_argument(guarded_server: GuardedServer) -> None:
    client = Client(guarded_server.direct)
    garbage = [b"\xff" * 64, b"\x0a\x05ab", os.urandom(2048) + b"\xff" * 11]
    methods = [LOGIN, PRELOGIN, "/comet.v1.AdminService/ListUsers"]  # the last: no credential
    for method in methods:
        raw = client.channel.unary_unary(method)  # bytes in, bytes out: no serializer
        for payload in garbage:
            code, details = refused(raw, payload, timeout=30)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (method, payload[:8], details)
    client.close()


def test_50_parallel_oversized_calls_leave_memory_where_it_was(
    guarded_server: GuardedServer,
) -> None:
    client = Client(guarded_server.direct)
    raw = client.channel.unary_unary(LOGIN)
    small = control_pb2.LoginRequest(username="x" * 200).SerializeToString()
    for _ in range(3):  # warm-up: the server's pools and buffers exist already
        refused(raw, small, timeout=30)
    start = guarded_server.rss_bytes()
    payload = login_request("z" * 10 * MB).SerializeToString()

    def oversized(_: int) -> grpc.StatusCode:
        return refused(raw, payload, timeout=60)[0]

    with ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(oversized, range(50)))
    assert set(codes) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    peak_after = guarded_server.rss_bytes()
    deadline = time.monotonic() + 15
    while guarded_server.rss_bytes() > start + 50 * MB and time.monotonic() < deadline:
        time.sleep(0.2)
    end = guarded_server.rss_bytes()
    print(
        f"server RSS {start / MB:.0f} MB before, {peak_after / MB:.0f} right after, "
        f"{end / MB:.0f} at the end"
    )
    assert end <= start + 50 * MB, (start // MB, end // MB)
    client.close()


def test_audit_rows_are_bounded(guarded_server: GuardedServer) -> None:
    """The longest values the server accepts still make small audit rows."""
    client = Client(guarded_server.direct)
    name = "q" * 255
    refused(
        client.auth.Login,
        login_request(name, registration=control_pb2.DeviceRegistration(name="n" * 255)),
        metadata=(("x-forwarded-for", "1.2.3.4," * 500),),  # ignored: not from a proxy
        timeout=30,
    )
    rows = guarded_server.audit("target = %s", name)
    assert len(rows) == 1
    assert sum(len(str(v)) for v in rows[0]) < 1024
    client.close()


def test_audit_events_past_their_retention_are_deleted(
    postgres_cluster: PostgresCluster,
) -> None:
    url = postgres_cluster.fresh_database()
    run_cli("comet-server", "migrate", "--database-url", url)
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        for days, actor in ((3, "old"), (0.5, "recent")):
            conn.execute(
                "INSERT INTO audit_events (time, actor, action, target, source_address,"
                " success, details) VALUES (%s, %s, 'login', %s, '', false, '')",
                (now - timedelta(days=days), actor, actor),
            )
    root = Path(tempfile.mkdtemp(prefix="comet-guard-"))
    process = ServerProcess(root, url, free_port(), extra_args=("--audit-retention-days", "1"))
    process.start()
    server = GuardedServer(process, url)
    try:
        deadline = time.monotonic() + 10
        while server.audit("actor = 'old'") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not server.audit("actor = 'old'")
        assert len(server.audit("actor = 'recent'")) == 1
    finally:
        process.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_admin_lookups_by_username_are_validated_too(guarded_server: GuardedServer) -> None:
    client = Client(guarded_server.direct)
    md = (("authorization", f"Bearer {guarded_server.root_token}"),)
    for call, request in (
        (client.admin.DeleteUser, admin_pb2.DeleteUserRequest(username="a\x00b")),
        (client.admin.ListDevices, admin_pb2.ListDevicesRequest(username="a\x00b")),
        (client.admin.GetUserProfile, admin_pb2.GetUserProfileRequest(username="x" * 5000)),
    ):
        code, _ = refused(call, request, metadata=md, timeout=30)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, call
    client.close()
