"""A revoked device's bucket credential stops working on every server instance at
once, and so does its device token (NOTIFY, not a cache timeout). Two real
``comet-server`` processes on one PostgreSQL; raw gRPC clients play the devices, so
nothing on the client side can refuse early."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest

from comet.server.secret_box import PREFIX as SEALED_PREFIX
from comet.v1 import control_pb2, storage_pb2
from tests.fixtures.devices import DeviceClient
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import AdminCli, ServerProcess, free_port

pytestmark = pytest.mark.timeout(120)

PASSWORD = "device-owner-pw-1"
# Revocation must hold everywhere within this long after the admin command returns.
BOUND = 1.0


@pytest.fixture(scope="module")
def instances(postgres_cluster: PostgresCluster) -> Iterator[list[ServerProcess]]:
    """Two instances for the module's tests (each uses accounts of its own)."""
    root = Path(tempfile.mkdtemp(prefix="comet-", dir="/tmp"))  # short: unix sockets
    os.chmod(root, 0o755)
    url = postgres_cluster.fresh_database()
    first = ServerProcess(root / "s1", url, free_port())
    first.data_dir.mkdir()
    first.add_admin()
    first.start()
    # Same secret key and bucket directory: the second instance serves the same buckets.
    second = ServerProcess(
        root / "s2",
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
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def admin(instances: list[ServerProcess], short_tmp: Path) -> AdminCli:
    cli = AdminCli(short_tmp / "admin.json", instances[0])
    cli.login()
    return cli


Calls = dict[str, Callable[[], object]]


def storage_calls(instance: DeviceClient, bucket_id: str, key: str) -> Calls:
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


def test_a_revoked_devices_bucket_credential_is_refused_everywhere_within_a_second(
    instances: list[ServerProcess], admin: AdminCli
) -> None:
    admin("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    first, second = DeviceClient(instances[0].url), DeviceClient(instances[1].url)
    laptop = first.login("alice", "laptop", PASSWORD)
    desktop = second.login("alice", "desktop", PASSWORD)
    bucket_id = first.share_bucket(laptop)

    # Each device has a credential of its own; the profile stores none.
    laptop_key = first.bucket_key(laptop, bucket_id)
    desktop_key = second.bucket_key(desktop, bucket_id)
    assert laptop_key != desktop_key
    assert instances[0].database_url
    with psycopg.connect(instances[0].database_url) as conn:
        row = conn.execute("SELECT profile::text FROM users WHERE username = 'alice'").fetchone()
        # The key credentials derive from is stored only sealed with the server key.
        sealed = conn.execute(
            "SELECT value FROM server_settings WHERE key = 'sealed:bucket-credentials'"
        ).fetchone()
    assert row is not None and bucket_id in row[0] and "bucket_key" not in row[0]
    assert sealed is not None and bytes(sealed[0]).decode().startswith(SEALED_PREFIX)

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

    # Logging in again rotates the device token: the old one (remembered by the second
    # instance just now) is refused there too, within the bound.
    rotated = first.login("alice", "desktop", PASSWORD, device_id=desktop.device_id)
    rotated_at = time.monotonic()
    assert rotated.device_id == desktop.device_id and rotated.token != desktop.token
    assert_all_refused_within(
        {
            "old token via second": lambda: second.agent.GetProfile(
                control_pb2.GetProfileRequest(), metadata=desktop.metadata, timeout=10
            )
        },
        rotated_at,
    )
    assert second.bucket_key(rotated, bucket_id) == desktop_key  # same device, same key


def test_reset_password_with_revoke_devices_ends_every_device_of_the_account(
    instances: list[ServerProcess], admin: AdminCli
) -> None:
    for name in ("bob", "carol"):
        admin("user", "add", name, "--password-stdin", stdin=PASSWORD + "\n")
    first, second = DeviceClient(instances[0].url), DeviceClient(instances[1].url)
    bob_a, bob_b = first.login("bob", "bob-a", PASSWORD), second.login("bob", "bob-b", PASSWORD)
    carol = second.login("carol", "carol-pc", PASSWORD)
    bob_bucket, carol_bucket = first.share_bucket(bob_a), second.share_bucket(carol)
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
    calls: Calls = {}
    for where, instance in (("first", first), ("second", second)):
        for device in (bob_a, bob_b):
            for name, call in storage_calls(instance, bob_bucket, keys[device.device_id]).items():
                calls[f"{name} by {device.device_id[:8]} via {where}"] = call
            calls[f"token of {device.device_id[:8]} via {where}"] = functools.partial(
                instance.agent.GetProfile,
                control_pb2.GetProfileRequest(),
                metadata=device.metadata,
                timeout=10,
            )
    assert_all_refused_within(calls, revoked_at)

    # Another account is untouched.
    for instance in (first, second):
        for name, call in storage_calls(instance, carol_bucket, carol_key).items():
            if name != "get" and name != "stat":  # carol's bucket has no "k"
                assert refused(call) is None, name
    devices = admin("device", "list", "--user", "bob", "--json").json()
    assert {d["revoked"] for d in devices} == {True}
