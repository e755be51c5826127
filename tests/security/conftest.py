"""A real comet-server process serving TLS (its self-signed certificate, pinned by
every client) shared by a module's tests, with one credential of every kind:
anonymous, a user session, a device token, a revoked device's token,
SUPER/OPERATOR/AUDITOR admin sessions and a bucket credential."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from comet.agent.credentials import KdfParams, derive_login_secrets
from comet.agent.transport import certificate_fingerprint
from comet.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    control_pb2,
    control_pb2_grpc,
    notify_pb2_grpc,
    storage_pb2_grpc,
)
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import AdminCli, ServerProcess, free_port

PASSWORD = "correct horse battery"
Metadata = tuple[tuple[str, str], ...]


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Stubs:
    channel: grpc.Channel
    auth: control_pb2_grpc.AuthServiceStub = field(init=False)
    agent: control_pb2_grpc.AgentServiceStub = field(init=False)
    admin: admin_pb2_grpc.AdminServiceStub = field(init=False)
    storage: storage_pb2_grpc.StorageServiceStub = field(init=False)

    def __post_init__(self) -> None:
        self.auth = control_pb2_grpc.AuthServiceStub(self.channel)
        self.agent = control_pb2_grpc.AgentServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.storage = storage_pb2_grpc.StorageServiceStub(self.channel)
        self.notify = notify_pb2_grpc.NotificationServiceStub(self.channel)


def login(
    stubs: Stubs,
    username: str,
    *,
    admin_session: bool = False,
    device_name: str = "",
    password: str = PASSWORD,
) -> control_pb2.LoginReply:
    """A raw AuthService login, as a device (with ``device_name``) or a session."""
    pre = stubs.auth.PreLogin(control_pb2.PreLoginRequest(username=username), timeout=30)
    kdf = KdfParams(pre.kdf.algorithm, pre.kdf.salt, pre.kdf.log2_n, pre.kdf.r, pre.kdf.p)
    request = control_pb2.LoginRequest(
        username=username,
        auth_key=derive_login_secrets(password, kdf).auth_key,
        admin_session=admin_session,
    )
    if device_name:
        request.registration.CopyFrom(control_pb2.DeviceRegistration(name=device_name, os="linux"))
    reply: control_pb2.LoginReply = stubs.auth.Login(request, timeout=30)
    return reply


@dataclass
class Cast:
    """One credential of each kind on one running server."""

    server: ServerProcess
    admin_cli: AdminCli
    stubs: Stubs
    metadata: dict[str, Metadata]
    device_id: str
    revoked_device_id: str
    bucket_id: str


@dataclass
class Site:
    """A running TLS server shared by a module's tests, its root admin's CLI, and a
    short temp dir (unix socket paths are short) that the postgres user can reach.
    ``certificate`` is the server's self-signed PEM and ``fingerprint`` its SHA-256
    fingerprint, which clients pin (``--trust-fingerprint``)."""

    root: Path
    server: ServerProcess
    admin_cli: AdminCli
    certificate: bytes
    fingerprint: str

    @property
    def target(self) -> str:
        return self.server.url.removeprefix("https://").rstrip("/")

    def credentials(self) -> grpc.ChannelCredentials:
        """TLS that trusts only this server's certificate, as a pinning client does."""
        return grpc.ssl_channel_credentials(root_certificates=self.certificate)

    def channel(self) -> grpc.Channel:
        return grpc.secure_channel(self.target, self.credentials())


@pytest.fixture(scope="module")
def site(postgres_cluster: PostgresCluster) -> Iterator[Site]:
    root = Path(tempfile.mkdtemp(prefix="comet-sec-", dir="/tmp"))
    os.chmod(root, 0o755)
    data_dir = root / "server"
    data_dir.mkdir()
    server = ServerProcess(
        data_dir, postgres_cluster.fresh_database(), free_port(), extra_args=("--tls",)
    )
    server.add_admin("root", PASSWORD)
    server.start()
    try:
        assert server.url.startswith("https://"), server.url
        certificate = (data_dir / "tls" / "server.crt").read_bytes()
        fingerprint = certificate_fingerprint(certificate)
        admin_cli = AdminCli(root / "admin.json", server)
        admin_cli.login("root", PASSWORD, extra=("--trust-fingerprint", fingerprint))
        yield Site(root, server, admin_cli, certificate, fingerprint)
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cast(site: Site) -> Iterator[Cast]:
    server, admin_cli = site.server, site.admin_cli
    channel = site.channel()
    try:
        for name, role in (("op", "operator"), ("aud", "auditor"), ("alice", "user")):
            admin_cli("user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD)
        stubs = Stubs(channel)
        device = login(stubs, "alice", device_name="alice-laptop")
        doomed = login(stubs, "alice", device_name="alice-old-phone")
        root_session = login(stubs, "root", admin_session=True).session_token
        stubs.admin.RevokeDevice(
            admin_pb2.RevokeDeviceRequest(device_id=doomed.device_id),
            metadata=bearer(root_session),
            timeout=30,
        )
        bucket = stubs.agent.CreateBucket(
            control_pb2.CreateBucketRequest(), metadata=bearer(device.device_token), timeout=30
        )
        metadata = {
            "anonymous": (),
            "user": bearer(login(stubs, "alice").session_token),
            "device": bearer(device.device_token),
            "revoked device": bearer(doomed.device_token),
            "super": bearer(root_session),
            "operator": bearer(login(stubs, "op", admin_session=True).session_token),
            "auditor": bearer(login(stubs, "aud", admin_session=True).session_token),
            "bucket": (
                ("x-comet-bucket", bucket.bucket_id),
                ("x-comet-bucket-key", bucket.bucket_key),
            ),
        }
        yield Cast(
            server,
            admin_cli,
            stubs,
            metadata,
            device.device_id,
            doomed.device_id,
            bucket.bucket_id,
        )
    finally:
        channel.close()
