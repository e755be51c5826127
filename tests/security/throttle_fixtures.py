"""A real ``comet-server`` process for the throttling and input tests, with clients
that appear to come from chosen addresses.

Distinct client addresses come from a small TCP forwarder that connects to the
server from a chosen loopback source (127.0.0.2, 127.0.0.3, ...). The forwarder on
``PROXY_SOURCE`` plays a trusted reverse proxy: the server is started with
``--trusted-proxy`` for it, so the X-Forwarded-For header its clients send is
believed, as the shipped nginx config makes it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psycopg
import pytest

from comet.agent.credentials import KdfParams, derive_login_secrets
from comet.server.rpc.convert import kdf_from_proto, kdf_to_proto
from comet.v1 import admin_pb2, admin_pb2_grpc, control_pb2, control_pb2_grpc
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import ADMIN_PASSWORD, ServerProcess, free_port

PROXY_SOURCE = "127.0.0.5"
KDF = KdfParams.new()  # the default client cost: the server-side cost is what is measured


class SourceForwarder:
    """Accepts on 127.0.0.1:<port> and relays each connection to the server from
    ``source``, so the server sees ``source`` as the peer. It runs as its own
    process, so relaying does not compete with the test's clients for the GIL."""

    def __init__(self, server_port: int, source: str) -> None:
        self.source = source
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.security.forwarder", source, str(server_port)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


_AUTH_KEYS: dict[tuple[str, bytes], bytes] = {}


def auth_key(password: str, kdf: KdfParams = KDF) -> bytes:
    """The client-side derivation, remembered: tests time the server, not this."""
    cache_key = (password, kdf.salt)
    if cache_key not in _AUTH_KEYS:
        _AUTH_KEYS[cache_key] = derive_login_secrets(password, kdf).auth_key
    return _AUTH_KEYS[cache_key]


@dataclass
class Client:
    """Raw stubs on one channel (through a forwarder or straight to the server)."""

    target: str
    forwarded_for: str = ""
    # PEM certificate to trust: TLS (as to the shipped nginx config); else plaintext.
    tls_root: bytes | None = None
    channel: grpc.Channel = field(init=False)

    def __post_init__(self) -> None:
        options = [("grpc.max_send_message_length", 32 * 1024 * 1024)]
        if self.tls_root is None:
            self.channel = grpc.insecure_channel(self.target, options=options)
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates=self.tls_root)
            self.channel = grpc.secure_channel(self.target, credentials, options=options)
        self.auth = control_pb2_grpc.AuthServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.agent = control_pb2_grpc.AgentServiceStub(self.channel)

    def metadata(self, forwarded_for: str = "") -> tuple[tuple[str, str], ...]:
        address = forwarded_for or self.forwarded_for
        return (("x-forwarded-for", address),) if address else ()

    def login(
        self,
        username: str,
        password: str,
        *,
        forwarded_for: str = "",
        admin: bool = False,
        key: bytes | None = None,
    ) -> control_pb2.LoginReply:
        request = control_pb2.LoginRequest(
            username=username,
            auth_key=key or auth_key(password),
            admin_session=admin,
            registration=control_pb2.DeviceRegistration(name="laptop"),
        )
        reply: control_pb2.LoginReply = self.auth.Login(
            request, metadata=self.metadata(forwarded_for), timeout=30
        )
        return reply

    def close(self) -> None:
        self.channel.close()


def login_error(client: Client, username: str, password: str, **kwargs: str) -> grpc.StatusCode:
    """The status of a login that must fail."""
    with pytest.raises(grpc.RpcError) as info:
        client.login(username, password, **kwargs)  # type: ignore[arg-type]
    code: grpc.StatusCode = info.value.code()  # type: ignore[attr-defined]
    return code


@dataclass
class GuardedServer:
    process: ServerProcess
    database_url: str
    root_token: str = ""
    _forwarders: dict[tuple[str, int], SourceForwarder] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def direct(self) -> str:
        return f"127.0.0.1:{self.process.port}"

    def via(self, source: str, port: int = 0) -> str:
        """A target whose connections reach the server (or whatever listens on
        ``port``) from ``source``."""
        port = port or self.process.port
        with self._lock:
            if (source, port) not in self._forwarders:
                self._forwarders[source, port] = SourceForwarder(port, source)
            return self._forwarders[source, port].target

    def add_user(self, username: str = "", password: str = "password-1") -> str:
        username = username or f"u{uuid.uuid4().hex[:10]}"
        client = Client(self.direct)
        try:
            client.admin.AddUser(
                admin_pb2.AddUserRequest(
                    username=username,
                    kdf=kdf_to_proto(KDF),
                    auth_key=auth_key(password),
                    role=admin_pb2.ADMIN_ROLE_USER,
                ),
                metadata=(("authorization", f"Bearer {self.root_token}"),),
                timeout=30,
            )
        finally:
            client.close()
        return username

    def audit(self, sql_where: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(
                "SELECT actor, action, target, source_address, success, details "
                f"FROM audit_events WHERE {sql_where} ORDER BY id",
                params,
            ).fetchall()

    def rss_bytes(self) -> int:
        assert self.process.proc is not None
        status = Path(f"/proc/{self.process.proc.pid}/status").read_text()
        line = next(ln for ln in status.splitlines() if ln.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def close(self) -> None:
        for forwarder in self._forwarders.values():
            forwarder.close()


def start_guarded_server(
    database_url: str, root: Path, *extra_args: str
) -> tuple[ServerProcess, GuardedServer]:
    process = ServerProcess(
        root,
        database_url,
        free_port(),
        extra_args=("--trusted-proxy", f"{PROXY_SOURCE}/32", *extra_args),
    )
    process.start()
    process.add_admin("root", ADMIN_PASSWORD)
    server = GuardedServer(process, database_url)
    client = Client(server.direct)
    try:
        prelogin = client.auth.PreLogin(control_pb2.PreLoginRequest(username="root"), timeout=30)
        kdf = kdf_from_proto(prelogin.kdf)
        reply = client.login("root", ADMIN_PASSWORD, admin=True, key=auth_key(ADMIN_PASSWORD, kdf))
        server.root_token = reply.session_token
    finally:
        client.close()
    return process, server


@pytest.fixture(scope="module")
def guarded_server(postgres_cluster: PostgresCluster) -> Iterator[GuardedServer]:
    """One real server per test module; tests keep apart by their own users and
    (forwarded) source addresses."""
    root = Path(tempfile.mkdtemp(prefix="comet-guard-"))
    process, server = start_guarded_server(postgres_cluster.fresh_database(), root)
    try:
        yield server
    finally:
        server.close()
        process.stop()
        shutil.rmtree(root, ignore_errors=True)


def unique_address() -> str:
    """A documentation-range address no other test uses."""
    n = int.from_bytes(os.urandom(3), "big")
    return f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"


def wait_until(predicate: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)
