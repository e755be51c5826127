"""A revoked device's bucket credential stops working on every server instance at
once, and so does its device token (NOTIFY, not a cache timeout). Two real
``comet-server`` processes on one PostgreSQL; raw gRPC clients play the devices, so
nothing on the client side can refuse early."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import pytest

from comet.agent.credentials import KdfParams, derive_login_secrets
from comet.agent.transport import parse_server_url
from comet.v1 import common_pb2, control_pb2, control_pb2_grpc, storage_pb2, storage_pb2_grpc
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import AdminCli, ServerProcess, free_port

pytestmark = pytest.mark.timeout(120)

PASSWORD = "device-owner-pw-1"
# Revocation must hold everywhere within this long after the admin command returns.
BOUND = 1.0


@pytest.fixture
def instances(postgres_cluster: PostgresCluster, short_tmp: Path) -> Iterator[list[ServerProcess]]:
    url = postgres_cluster.fresh_database()
    first = ServerProcess(short_tmp / "s1", url, free_port())
    first.data_dir.mkdir()
    first.add_admin()
    first.start()
    # Same secret key and bucket directory: the second instance serves the same buckets.
    second = ServerProcess(
        short_tmp / "s2",
        url,
        free_port(),
        extra_args=(
            "--secret-key-file", str(first.data_dir / "secret.key"),
            "--bucket-dir", str(first.data_dir / "buckets"),
        ),
    )  # fmt: skip
    second.data_dir.mkdir()
    second.start()
    try:
        yield [first, second]
    finally:
        for server in (first, second):
            server.kill()


@pytest.fixture
def admin(instances: list[ServerProcess], short_tmp: Path) -> AdminCli:
    cli = AdminCli(short_tmp / "admin.json", instances[0])
    cli.login()
    return cli


@dataclass
class Device:
    device_id: str
    token: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)


class Instance:
    """Raw stubs on one server instance."""

    def __init__(self, server: ServerProcess) -> None:
        self.channel = grpc.insecure_channel(parse_server_url(server.url).target)
        self.auth = control_pb2_grpc.AuthServiceStub(self.channel)
        self.agent = control_pb2_grpc.AgentServiceStub(self.channel)
        self.storage = storage_pb2_grpc.StorageServiceStub(self.channel)

    def login(self, username: str, name: str) -> Device:
        kdf = self.auth.PreLogin(control_pb2.PreLoginRequest(username=username), timeout=10).kdf
        params = KdfParams(kdf.algorithm, kdf.salt, kdf.log2_n, kdf.r, kdf.p)
        reply = self.auth.Login(
            control_pb2.LoginRequest(
                username=username,
                auth_key=derive_login_secrets(PASSWORD, params).auth_key,
                registration=control_pb2.DeviceRegistration(name=name, os="linux"),
            ),
            timeout=30,
        )
        return Device(reply.device_id, reply.device_token)

    def bucket_key(self, device: Device, bucket_id: str) -> str:
        """The credential the device finds in the profile it fetches."""
        profile = self.agent.GetProfile(
            control_pb2.GetProfileRequest(), metadata=device.metadata, timeout=10
        )
        return next(v.comet.bucket_key for v in profile.vaults if v.comet.bucket_id == bucket_id)


def storage_calls(instance: Instance, bucket_id: str, key: str) -> dict[str, Callable[[], object]]:
    """Every StorageService method, as a call with these credentials."""
    md = (("x-comet-bucket", bucket_id), ("x-comet-bucket-key", key))
    s = instance.storage
    return {
        "put": lambda: s.Put(
            iter([storage_pb2.PutObjectChunk(key="new", total_size=3, data=b"abc")]),
            metadata=md,
            timeout=10,
        ),
        "get": lambda: [
            c.data for c in s.Get(storage_pb2.GetObjectRequest(key="k"), metadata=md, timeout=10)
        ],
        "stat": lambda: s.Stat(storage_pb2.StatObjectRequest(key="k"), metadata=md, timeout=10),
        "list": lambda: list(s.List(storage_pb2.ListObjectsRequest(), metadata=md, timeout=10)),
        "delete": lambda: s.Delete(
            storage_pb2.DeleteObjectRequest(key="new"), metadata=md, timeout=10
        ),
    }


def refused(call: Callable[[], object]) -> grpc.StatusCode | None:
    try:
        call()
    except grpc.RpcError as e:
        assert isinstance(e, grpc.Call)
        return e.code()
    return None


def assert_all_refused_within(calls: dict[str, Callable[[], object]], since: float) -> float:
    """Every call refused with UNAUTHENTICATED no later than BOUND after ``since``;
    returns the latest moment (seconds after ``since``) a call still went through."""
    last_success = 0.0
    pending = dict(calls)
    while pending:
        for name, call in list(pending.items()):
            code = refused(call)
            now = time.monotonic() - since
            if code is None:
                last_success = now
                assert now < BOUND, f"{name} still allowed {now:.2f} s after the revocation"
            else:
                assert code == grpc.StatusCode.UNAUTHENTICATED, (name, code)
                del pending[name]
        if pending:
            time.sleep(0.02)
    return last_success


def share_bucket(first: Instance, owner: Device) -> str:
    """A bucket created by ``owner`` and saved as a vault in the account's profile."""
    reply = first.agent.CreateBucket(
        control_pb2.CreateBucketRequest(), metadata=owner.metadata, timeout=10
    )
    profile = first.agent.GetProfile(
        control_pb2.GetProfileRequest(), metadata=owner.metadata, timeout=10
    )
    profile.vaults.append(
        common_pb2.StorageVault(
            vault_id=f"v-{reply.bucket_id}",
            name=f"server {reply.bucket_id[:8]}",
            comet=common_pb2.CometVaultSettings(
                bucket_id=reply.bucket_id, bucket_key=reply.bucket_key
            ),
        )
    )
    first.agent.PutProfile(
        control_pb2.PutProfileRequest(profile=profile), metadata=owner.metadata, timeout=10
    )
    return reply.bucket_id


def test_a_revoked_devices_bucket_credential_is_refused_everywhere_within_a_second(
    instances: list[ServerProcess], admin: AdminCli
) -> None:
    admin("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    first, second = Instance(instances[0]), Instance(instances[1])
    laptop, desktop = first.login("alice", "laptop"), second.login("alice", "desktop")
    bucket_id = share_bucket(first, laptop)

    # Each device has a credential of its own; the profile stores none.
    laptop_key = first.bucket_key(laptop, bucket_id)
    desktop_key = second.bucket_key(desktop, bucket_id)
    assert laptop_key != desktop_key
    assert instances[0].database_url
    with psycopg.connect(instances[0].database_url) as conn:
        row = conn.execute("SELECT profile::text FROM users WHERE username = 'alice'").fetchone()
    assert row is not None and bucket_id in row[0] and "bucket_key" not in row[0]

    for instance in (first, second):
        for key in (laptop_key, desktop_key):
            calls = storage_calls(instance, bucket_id, key)
            calls["put"]()
            first.storage.Put(
                iter([storage_pb2.PutObjectChunk(key="k", total_size=2, data=b"ok")]),
                metadata=(("x-comet-bucket", bucket_id), ("x-comet-bucket-key", key)),
                timeout=10,
            )
            for call in calls.values():
                call()  # all allowed before the revocation
    # The second instance has the laptop's device token in its memory now.
    second.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=laptop.metadata, timeout=10)

    admin("device", "revoke", laptop.device_id)
    revoked_at = time.monotonic()
    calls = {
        f"{name} via {where}": call
        for where, instance in (("first", first), ("second", second))
        for name, call in storage_calls(instance, bucket_id, laptop_key).items()
    }
    calls["device token via second"] = lambda: second.agent.GetProfile(
        control_pb2.GetProfileRequest(), metadata=laptop.metadata, timeout=10
    )
    assert_all_refused_within(calls, revoked_at)
    assert time.monotonic() - revoked_at < BOUND + 0.5

    # The account's other device is not affected, on either instance.
    for instance in (first, second):
        for name, call in storage_calls(instance, bucket_id, desktop_key).items():
            assert refused(call) is None, name
        assert instance.bucket_key(desktop, bucket_id) == desktop_key


def test_reset_password_with_revoke_devices_ends_every_device_of_the_account(
    instances: list[ServerProcess], admin: AdminCli
) -> None:
    for name in ("bob", "carol"):
        admin("user", "add", name, "--password-stdin", stdin=PASSWORD + "\n")
    first, second = Instance(instances[0]), Instance(instances[1])
    bob_a, bob_b = first.login("bob", "bob-a"), second.login("bob", "bob-b")
    carol = second.login("carol", "carol-pc")
    bob_bucket, carol_bucket = share_bucket(first, bob_a), share_bucket(second, carol)
    keys = {d.device_id: first.bucket_key(d, bob_bucket) for d in (bob_a, bob_b)}
    carol_key = second.bucket_key(carol, carol_bucket)
    for device in (bob_a, bob_b):  # remembered by the second instance
        second.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=device.metadata)

    # --force alone does not revoke devices: their credentials still work.
    admin(
        "user", "reset-password", "bob", "--force", "--password-stdin", stdin="new-pw-1\n"
    )  # fmt: skip
    assert refused(storage_calls(second, bob_bucket, keys[bob_a.device_id])["list"]) is None

    result = admin(
        "user", "reset-password", "bob", "--force", "--revoke-devices", "--password-stdin",
        "--json", stdin="new-pw-2\n",
    )  # fmt: skip
    revoked_at = time.monotonic()
    assert result.json()["devices_revoked"] == 2
    calls: dict[str, Callable[[], object]] = {}
    for where, instance in (("first", first), ("second", second)):
        for device in (bob_a, bob_b):
            for name, call in storage_calls(instance, bob_bucket, keys[device.device_id]).items():
                calls[f"{name} by {device.device_id[:8]} via {where}"] = call
            calls[f"token of {device.device_id[:8]} via {where}"] = (
                lambda instance=instance, device=device: instance.agent.GetProfile(
                    control_pb2.GetProfileRequest(), metadata=device.metadata, timeout=10
                )
            )
    assert_all_refused_within(calls, revoked_at)

    # Another account is untouched.
    for instance in (first, second):
        for name, call in storage_calls(instance, carol_bucket, carol_key).items():
            if name != "get" and name != "stat":  # carol's bucket has no "k"
                assert refused(call) is None, name
    devices = admin("device", "list", "--user", "bob", "--json").json()
    assert {d["revoked"] for d in devices} == {True}
