"""Buckets of "Comet Server" vaults: who may open them, quotas, usage counts, and
uploads that go wrong leaving nothing behind. Against a real server and PostgreSQL."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import grpc
import psycopg
import pytest

from comet.agent.credentials import derive_login_secrets
from comet.agent.storage.base import ObjectNotFoundError, StorageError
from comet.agent.storage.comet import CometStorage, CometStorageConfig
from comet.agent.transport import parse_server_url
from comet.server.buckets.errors import BucketLimitError
from comet.server.buckets.store import (
    DEFAULT_ACCOUNT_QUOTA_BYTES,
    DEFAULT_MAX_BUCKETS,
    BucketPolicy,
)
from comet.server.store.policies import PolicyRecord
from comet.v1 import control_pb2, control_pb2_grpc, storage_pb2, storage_pb2_grpc
from tests.fixtures.comet_server import BUCKET_STORES, TEST_KDF, CometTestServer, serve_buckets
from tests.fixtures.devices import DeviceClient
from tests.fixtures.processes import AdminCli, ServerProcess

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=BUCKET_STORES)
def comet_server(request: pytest.FixtureRequest) -> Iterator[CometTestServer]:
    """Every test here holds for buckets in a directory and in an object store."""
    yield from serve_buckets(request, request.param)


@pytest.fixture
def channel(comet_server: CometTestServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(parse_server_url(comet_server.url).target) as channel:
        yield channel


def credentials(config: CometStorageConfig) -> tuple[tuple[str, str], ...]:
    return (("x-comet-bucket", config.bucket_id), ("x-comet-bucket-key", config.bucket_key))


def rpc_code(call: object) -> grpc.StatusCode:
    """Run a zero-argument call that must fail; return its status code."""
    with pytest.raises(grpc.RpcError) as info:
        result = call()  # type: ignore[operator]
        if isinstance(result, Iterator):
            list(result)
    error = info.value
    assert isinstance(error, grpc.Call)
    return error.code()


def test_one_buckets_key_never_opens_another(comet_server: CometTestServer) -> None:
    a, b = comet_server.new_bucket(), comet_server.new_bucket()
    CometStorage(a).put("secret", b"a's data")
    mixed = dataclasses.replace(a, bucket_key=b.bucket_key)
    storage = CometStorage(mixed)
    for op in (
        lambda: storage.get("secret"),
        lambda: storage.stat("secret"),
        lambda: storage.put("secret", b"overwritten"),
        lambda: storage.delete("secret"),
        lambda: list(storage.list()),
    ):
        with pytest.raises(StorageError, match="refused this vault's bucket credentials") as info:
            op()
        assert not isinstance(info.value, ObjectNotFoundError)
    assert list(CometStorage(b).list()) == []
    assert CometStorage(a).get("secret") == b"a's data"


@pytest.mark.parametrize(
    "metadata",
    [
        (("x-comet-bucket-key", "k"),),
        (("x-comet-bucket", "not-a-uuid"), ("x-comet-bucket-key", "k")),
        (("x-comet-bucket", "00000000-0000-0000-0000-000000000000"), ("x-comet-bucket-key", "k")),
        (),
    ],
    ids=["no-bucket", "malformed-id", "unknown-id", "nothing"],
)
def test_calls_without_valid_credentials_are_refused(
    channel: grpc.Channel, metadata: tuple[tuple[str, str], ...]
) -> None:
    stub = storage_pb2_grpc.StorageServiceStub(channel)
    code = rpc_code(
        lambda: stub.Stat(storage_pb2.StatObjectRequest(key="k"), metadata=metadata, timeout=10)
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_a_wrong_key_is_refused(comet_server: CometTestServer, channel: grpc.Channel) -> None:
    config = comet_server.new_bucket()
    wrong = dataclasses.replace(config, bucket_key=config.bucket_key[:-1] + "x")
    stub = storage_pb2_grpc.StorageServiceStub(channel)
    code = rpc_code(
        lambda: stub.List(storage_pb2.ListObjectsRequest(), metadata=credentials(wrong), timeout=10)
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(StorageError):
        CometStorage(wrong).put("k", b"v")


def test_quota_exceeded_is_refused_and_leaves_nothing(
    comet_server: CometTestServer, channel: grpc.Channel
) -> None:
    config = comet_server.new_bucket(quota_bytes=1000)
    storage = CometStorage(config)
    storage.put("a", bytes(600))
    with pytest.raises(StorageError, match="quota exceeded"):
        storage.put("b", bytes(600))  # refused before the data is read
    storage.put("a", bytes(900))  # an overwrite only needs the difference
    with pytest.raises(StorageError, match="quota exceeded"):
        storage.put("c", bytes(101))
    stub = storage_pb2_grpc.StorageServiceStub(channel)
    code = rpc_code(
        lambda: stub.Put(
            iter([storage_pb2.PutObjectChunk(key="d", total_size=200, data=bytes(200))]),
            metadata=credentials(config),
            timeout=10,
        )
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert {(i.key, i.size) for i in storage.list()} == {("a", 900)}
    assert comet_server.temp_files(config.bucket_id) == []
    assert comet_server.used_bytes(config.bucket_id) == 900
    storage.put("c", bytes(100))  # exactly full
    assert comet_server.used_bytes(config.bucket_id) == 1000


def test_concurrent_puts_cannot_overrun_the_quota(comet_server: CometTestServer) -> None:
    config = comet_server.new_bucket(quota_bytes=1000)
    storage = CometStorage(config)

    def put(n: int) -> bool:
        try:
            storage.put(f"data/{n}", bytes(300))
        except StorageError as e:
            assert "quota exceeded" in str(e)
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        stored = sum(pool.map(put, range(8)))
    assert stored == 3
    assert comet_server.used_bytes(config.bucket_id) == 900
    assert sum(i.size for i in storage.list()) == 900
    assert comet_server.temp_files(config.bucket_id) == []


def test_a_deleted_users_buckets_are_refused(comet_server: CometTestServer) -> None:
    user_id = comet_server.new_user("leaving-user")
    config = comet_server.new_bucket(user_id)
    storage = CometStorage(config)
    storage.put("k", b"v")
    comet_server.run(comet_server.stores.accounts.delete_user("leaving-user"))
    with pytest.raises(StorageError, match="refused"):
        storage.get("k")
    with pytest.raises(StorageError, match="refused"):
        storage.put("k2", b"v")


def test_used_bytes_follow_puts_overwrites_and_deletes(comet_server: CometTestServer) -> None:
    config = comet_server.new_bucket()
    storage = CometStorage(config)
    used = lambda: comet_server.used_bytes(config.bucket_id)  # noqa: E731
    storage.put("data/aa/1", bytes(1000))
    storage.put("data/aa/2", bytes(2 * MiB + 1))
    assert used() == 1000 + 2 * MiB + 1
    storage.put("data/aa/1", bytes(10))
    assert used() == 10 + 2 * MiB + 1
    storage.delete("data/aa/2")
    storage.delete("data/aa/2")
    storage.delete("never/written")
    assert used() == 10
    # A count that drifted (a crash between rename and commit) is recounted.
    comet_server.plant_object(config.bucket_id, "stray", bytes(77))
    comet_server.run(comet_server.stores.buckets.reconcile())
    assert used() == 87


@pytest.mark.parametrize("sent", [5, 15], ids=["short", "long"])
def test_a_put_whose_size_differs_leaves_nothing(
    comet_server: CometTestServer, channel: grpc.Channel, sent: int
) -> None:
    config = comet_server.new_bucket()
    stub = storage_pb2_grpc.StorageServiceStub(channel)
    messages = [
        storage_pb2.PutObjectChunk(key="k", total_size=10, data=bytes(3)),
        storage_pb2.PutObjectChunk(data=bytes(sent - 3)),
    ]
    code = rpc_code(lambda: stub.Put(iter(messages), metadata=credentials(config), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(ObjectNotFoundError):
        CometStorage(config).stat("k")
    assert comet_server.temp_files(config.bucket_id) == []
    assert comet_server.used_bytes(config.bucket_id) == 0


def test_get_streams_pieces_of_at_most_one_mib(
    comet_server: CometTestServer, channel: grpc.Channel
) -> None:
    config = comet_server.new_bucket()
    data = os.urandom(3 * MiB + 5)
    CometStorage(config).put("pack", data)
    stub = storage_pb2_grpc.StorageServiceStub(channel)
    pieces = [
        chunk.data
        for chunk in stub.Get(
            storage_pb2.GetObjectRequest(key="pack", offset=3, to_end=True),
            metadata=credentials(config),
            timeout=30,
        )
    ]
    assert max(len(p) for p in pieces) <= MiB and len(pieces) == 4
    assert b"".join(pieces) == data[3:]


def test_a_missing_object_carries_its_own_error_code(
    comet_server: CometTestServer, channel: grpc.Channel
) -> None:
    config = comet_server.new_bucket()
    stub = storage_pb2_grpc.StorageServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Stat(storage_pb2.StatObjectRequest(key="k"), metadata=credentials(config), timeout=10)
    error = info.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert ("comet-error-code", "bucket.object_not_found") in (error.trailing_metadata() or ())


def test_create_bucket_needs_a_device_and_belongs_to_its_account(
    comet_server: CometTestServer, channel: grpc.Channel
) -> None:
    agent = control_pb2_grpc.AgentServiceStub(channel)
    code = rpc_code(lambda: agent.CreateBucket(control_pb2.CreateBucketRequest(), timeout=10))
    assert code == grpc.StatusCode.UNAUTHENTICATED

    auth_key = derive_login_secrets("bucket-owner-pw", TEST_KDF).auth_key
    user = comet_server.run(
        comet_server.stores.accounts.create_user("bucket-owner", TEST_KDF, auth_key)
    )
    login = control_pb2_grpc.AuthServiceStub(channel).Login(
        control_pb2.LoginRequest(
            username="bucket-owner",
            auth_key=auth_key,
            registration=control_pb2.DeviceRegistration(name="laptop", os="linux"),
        ),
        timeout=30,
    )
    device = (("authorization", f"Bearer {login.device_token}"),)
    reply = agent.CreateBucket(
        control_pb2.CreateBucketRequest(quota_bytes=5000), metadata=device, timeout=10
    )
    assert reply.bucket_id and len(reply.bucket_key) >= 40 and reply.quota_bytes == 5000
    buckets = comet_server.run(comet_server.stores.buckets.list_buckets(user_id=user.user_id))
    assert [b.bucket_id for b in buckets] == [reply.bucket_id]
    storage = CometStorage(CometStorageConfig(comet_server.url, reply.bucket_id, reply.bucket_key))
    storage.put("k", b"v")
    assert storage.get("k") == b"v"


# ---------------------------------------------------------------- per-device credentials


def test_each_device_has_its_own_credential_bound_to_its_account(
    comet_server: CometTestServer,
) -> None:
    owner = comet_server.new_user()
    laptop, desktop = comet_server.new_device(owner), comet_server.new_device(owner)
    config = comet_server.new_bucket(owner, device_id=laptop)
    on_desktop = comet_server.credential(config, desktop)
    assert on_desktop.bucket_key != config.bucket_key
    CometStorage(config).put("k", b"from the laptop")
    assert CometStorage(on_desktop).get("k") == b"from the laptop"
    # A device of another account gets a well-formed credential, which opens nothing.
    stranger = comet_server.credential(config, comet_server.new_device(comet_server.new_user()))
    with pytest.raises(StorageError, match="refused"):
        CometStorage(stranger).get("k")
    # Nor does a credential whose device part was swapped for another of the account.
    forged = dataclasses.replace(config, bucket_key=config.bucket_key.replace(laptop, desktop, 1))
    with pytest.raises(StorageError, match="refused"):
        list(CometStorage(forged).list())


# ---------------------------------------------------------------- account limits


def limited_account(comet_server: CometTestServer, **limits: int) -> str:
    """A new account whose policy sets ``limits`` (storage_quota_bytes, max_buckets)."""
    user_id = comet_server.new_user(f"lim-{uuid.uuid4().hex[:8]}")
    policy = comet_server.run(
        comet_server.stores.policies.put(PolicyRecord("", f"limits {user_id}", dict(limits)))
    )
    username = next(
        u.username for u in comet_server.run(comet_server.stores.accounts.list_users())
        if u.user_id == user_id
    )  # fmt: skip
    comet_server.run(comet_server.stores.policies.assign(username, policy.policy_id))
    return user_id


def test_the_account_quota_holds_across_its_buckets(
    comet_server: CometTestServer, channel: grpc.Channel
) -> None:
    user_id = limited_account(comet_server, storage_quota_bytes=1000)
    first, second = comet_server.new_bucket(user_id), comet_server.new_bucket(user_id)
    CometStorage(first).put("a", bytes(600))
    with pytest.raises(StorageError, match=r"quota exceeded.*the account has 600 of its 1000"):
        CometStorage(second).put("b", bytes(600))
    code = rpc_code(
        lambda: storage_pb2_grpc.StorageServiceStub(channel).Put(
            iter([storage_pb2.PutObjectChunk(key="b", total_size=401, data=bytes(401))]),
            metadata=credentials(second),
            timeout=10,
        )
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    CometStorage(second).put("b", bytes(400))  # exactly full
    CometStorage(first).delete("a")
    CometStorage(second).put("c", bytes(600))  # room again
    assert comet_server.temp_files(second.bucket_id) == []


def test_concurrent_puts_to_two_buckets_cannot_overrun_the_account_quota(
    comet_server: CometTestServer,
) -> None:
    user_id = limited_account(comet_server, storage_quota_bytes=1000)
    buckets = [CometStorage(comet_server.new_bucket(user_id)) for _ in range(2)]

    def put(n: int) -> bool:
        try:
            buckets[n % 2].put(f"data/{n}", bytes(300))
        except StorageError as e:
            assert "quota exceeded" in str(e)
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(put, range(8))) == 3
    assert sum(i.size for b in buckets for i in b.list()) == 900


def test_an_account_has_at_most_max_buckets(comet_server: CometTestServer) -> None:
    user_id = limited_account(comet_server, max_buckets=2)
    comet_server.new_bucket(user_id)
    comet_server.new_bucket(user_id)
    with pytest.raises(BucketLimitError, match="already has 2 of its 2 buckets"):
        comet_server.new_bucket(user_id)
    unlimited = limited_account(comet_server, max_buckets=-1, storage_quota_bytes=-1)
    for _ in range(DEFAULT_MAX_BUCKETS + 1):
        comet_server.new_bucket(unlimited)


def test_server_defaults_limit_accounts_without_a_policy_saying_otherwise(
    comet_server: CometTestServer,
) -> None:
    user_id = comet_server.new_user()
    for _ in range(DEFAULT_MAX_BUCKETS):
        comet_server.new_bucket(user_id)
    with pytest.raises(BucketLimitError):
        comet_server.new_bucket(user_id)
    assert BucketPolicy().account_quota_bytes == DEFAULT_ACCOUNT_QUOTA_BYTES == 1 << 40


# ---------------------------------------------------------------- comet-admin, real server


def test_admin_lists_and_deletes_buckets_and_user_delete_takes_them_unless_kept(
    server: ServerProcess, admin: AdminCli
) -> None:
    client = DeviceClient(server.url)
    devices = {}
    for name in ("dora", "erin"):
        admin("user", "add", name, "--password-stdin", stdin="pw-of-" + name + "\n")
        devices[name] = client.login(name, f"{name}-pc", "pw-of-" + name)
    buckets: dict[str, list[str]] = {"dora": [], "erin": []}
    for name, device in devices.items():
        for _ in range(2):
            bucket_id = client.share_bucket(device)
            buckets[name].append(bucket_id)
            CometStorage(
                CometStorageConfig(server.url, bucket_id, client.bucket_key(device, bucket_id))
            ).put("data/k", bytes(1234))
    bucket_root = server.data_dir / "buckets"

    listed = admin("bucket", "list", "--json").json()
    assert {(b["bucket_id"], b["user"]) for b in listed} == {
        (b, name) for name, ids in buckets.items() for b in ids
    }
    assert {b["used_bytes"] for b in listed} == {1234}
    assert not any(b["account_deleted"] for b in listed)
    assert [b["bucket_id"] for b in admin("bucket", "list", "--user", "dora", "--json").json()] == (
        buckets["dora"]
    )
    assert "dora" in admin("bucket", "list").stdout

    # bucket delete: the row, the files and every credential for it are gone.
    gone = buckets["dora"].pop()
    key = client.bucket_key(devices["dora"], gone)
    assert admin("bucket", "delete", gone, "--json").json()["freed_bytes"] == 1234
    assert not (bucket_root / gone).exists()
    with pytest.raises(StorageError, match="refused"):
        CometStorage(CometStorageConfig(server.url, gone, key)).get("data/k")
    missing = admin("bucket", "delete", gone, check=False)
    assert missing.returncode != 0 and f"no bucket {gone!r}" in missing.stderr

    # An account quota from a policy (protobuf JSON: int64 as a string) holds at once.
    policy_file = server.data_dir / "quota.json"
    policy_file.write_text('{"storage_quota_bytes": "3000"}')
    policy = admin("policy", "create", "small", "--file", str(policy_file), "--json").json()
    admin("policy", "assign", "erin", policy["policy_id"])
    erin_bucket = buckets["erin"][0]
    erin = CometStorageConfig(
        server.url, erin_bucket, client.bucket_key(devices["erin"], erin_bucket)
    )
    with pytest.raises(StorageError, match=r"quota exceeded.*the account has 2468 of its 3000"):
        CometStorage(erin).put("more", bytes(1000))
    code = rpc_code(
        lambda: client.storage.Put(
            iter([storage_pb2.PutObjectChunk(key="more", total_size=533, data=bytes(533))]),
            metadata=credentials(erin),
            timeout=10,
        )
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    CometStorage(erin).put("more", bytes(532))

    # user delete (default): the account's buckets and their data go with it.
    admin("user", "delete", "dora")
    assert not (bucket_root / buckets["dora"][0]).exists()
    assert admin("bucket", "list", "--user", "dora", "--json").json() == []

    # --keep-data: the buckets stay on disk and in the list, but nobody can open them.
    kept = buckets["erin"]
    keys = [client.bucket_key(devices["erin"], b) for b in kept]
    assert "kept" in admin("user", "delete", "erin", "--keep-data").stdout
    listed = admin("bucket", "list", "--user", "erin", "--json").json()
    assert sorted(b["bucket_id"] for b in listed) == sorted(kept)
    assert all(b["account_deleted"] and b["user"] == "erin" for b in listed)
    assert "erin (deleted)" in admin("bucket", "list").stdout
    assert all((bucket_root / b / "data" / "k").stat().st_size == 1234 for b in kept)
    for bucket_id, key in zip(kept, keys, strict=True):
        with pytest.raises(StorageError, match="refused"):
            CometStorage(CometStorageConfig(server.url, bucket_id, key)).get("data/k")
    admin("bucket", "delete", kept[0])
    assert [b["bucket_id"] for b in admin("bucket", "list", "--json").json()] == [kept[1]]
    client.close()


def test_an_upload_in_flight_when_its_device_is_revoked_does_not_land(
    comet_server: CometTestServer, channel: grpc.Channel
) -> None:
    owner = comet_server.new_user()
    device = comet_server.new_device(owner)
    config = comet_server.new_bucket(owner, device_id=device)
    started, release = threading.Event(), threading.Event()

    def messages() -> Iterator[storage_pb2.PutObjectChunk]:
        yield storage_pb2.PutObjectChunk(key="late", total_size=2 * MiB, data=bytes(MiB))
        started.set()
        release.wait(timeout=30)
        yield storage_pb2.PutObjectChunk(data=bytes(MiB))

    stub = storage_pb2_grpc.StorageServiceStub(channel)
    with ThreadPoolExecutor(max_workers=1) as pool:
        upload = pool.submit(
            rpc_code, lambda: stub.Put(messages(), metadata=credentials(config), timeout=30)
        )
        assert started.wait(timeout=30)
        comet_server.run(comet_server.stores.accounts.revoke_device(device))
        release.set()
        assert upload.result(timeout=30) == grpc.StatusCode.UNAUTHENTICATED
    assert not comet_server.has_object(config.bucket_id, "late")
    assert comet_server.temp_files(config.bucket_id) == []
    assert comet_server.used_bytes(config.bucket_id) == 0


def test_a_download_in_flight_stops_once_its_device_is_revoked(
    comet_server: CometTestServer, channel: grpc.Channel
) -> None:
    owner = comet_server.new_user()
    device = comet_server.new_device(owner)
    config = comet_server.new_bucket(owner, device_id=device)
    size = 24 * MiB  # more than HTTP/2 flow control lets the server send ahead
    CometStorage(config).put("big", bytes(size))
    stub = storage_pb2_grpc.StorageServiceStub(channel)
    stream = stub.Get(
        storage_pb2.GetObjectRequest(key="big", to_end=True),
        metadata=credentials(config),
        timeout=60,
    )
    received = len(next(stream).data)
    comet_server.run(comet_server.stores.accounts.revoke_device(device))
    time.sleep(1.0)
    with pytest.raises(grpc.RpcError) as info:
        for chunk in stream:
            received += len(chunk.data)
    assert isinstance(info.value, grpc.Call)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert received < size


def test_listings_and_stats_carry_the_storage_mtime_prune_ages_by(
    comet_server: CometTestServer,
) -> None:
    storage = CometStorage(comet_server.new_bucket())
    before = time.time_ns() - 5 * 10**9
    storage.put("data/aa/pack", b"p")
    [listed] = storage.list("data/")
    assert listed.mtime_ns is not None and before < listed.mtime_ns < time.time_ns() + 5 * 10**9
    assert storage.stat("data/aa/pack").mtime_ns == listed.mtime_ns


class DiesAfterPublish:
    """Fault injection: the object store write happens, then the instance "dies"
    before the usage commit (an exception in its place)."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def publish(self, pending: object, written: object) -> None:
        self._inner.publish(pending, written)  # type: ignore[attr-defined]
        raise ConnectionResetError("the instance died before its commit")


def test_an_object_stored_without_its_usage_commit_is_recounted(
    comet_server: CometTestServer,
) -> None:
    config = comet_server.new_bucket()
    storage = CometStorage(config)
    storage.put("data/aa/1", bytes(100))
    buckets = comet_server.stores.buckets
    real = buckets.objects
    buckets.objects = DiesAfterPublish(real)  # type: ignore[assignment]
    try:
        with pytest.raises(StorageError):
            storage.put("data/aa/2", bytes(300))
    finally:
        buckets.objects = real
    assert comet_server.has_object(config.bucket_id, "data/aa/2")  # landed, uncounted
    assert comet_server.used_bytes(config.bucket_id) == 100
    assert comet_server.run(buckets.repair_intents(older_than=timedelta(0))) >= 1
    assert comet_server.used_bytes(config.bucket_id) == 400
    # Repaired once; puts that commit leave no intent behind.
    storage.put("data/aa/3", bytes(10))
    assert comet_server.run(buckets.repair_intents(older_than=timedelta(0))) == 0
    assert comet_server.used_bytes(config.bucket_id) == 410


class HeldInPublish:
    """Fault injection: the object store's write of ``key`` waits until released
    (after storing it, with ``landed``), as a slow PUT of a big pack would."""

    def __init__(self, inner: object, key: str, *, landed: bool = False) -> None:
        self._inner = inner
        self._key = key
        self._landed = landed
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def publish(self, pending: object, written: object) -> None:
        held = getattr(pending, "key", None) == self._key
        if held and not self._landed:
            self.entered.set()
            assert self.release.wait(30)
        self._inner.publish(pending, written)  # type: ignore[attr-defined]
        if held and self._landed:
            self.entered.set()
            assert self.release.wait(30)


def held_put(
    comet_server: CometTestServer, storage: CometStorage, key: str, data: bytes, *, landed: bool
) -> tuple[HeldInPublish, threading.Thread, list[BaseException]]:
    """Start ``storage.put(key, data)`` in a thread and wait until its object store
    write is held; returns the hold, the thread and where its failure goes."""
    buckets = comet_server.stores.buckets
    hold = HeldInPublish(buckets.objects, key, landed=landed)
    buckets.objects = hold  # type: ignore[assignment]
    failures: list[BaseException] = []

    def put() -> None:
        try:
            storage.put(key, data)
        except BaseException as e:
            failures.append(e)

    thread = threading.Thread(target=put)
    thread.start()
    assert hold.entered.wait(30), failures
    return hold, thread, failures


def test_a_put_holds_no_lock_while_the_store_writes_yet_its_bytes_are_reserved(
    comet_server: CometTestServer,
) -> None:
    config = comet_server.new_bucket(quota_bytes=1000)
    storage = CometStorage(config)
    storage.put("data/aa/small", bytes(100))
    buckets = comet_server.stores.buckets
    real = buckets.objects
    try:
        hold, thread, failures = held_put(
            comet_server, storage, "data/aa/slow", bytes(600), landed=False
        )
        # Another put and a delete in the same bucket go through meanwhile (the row
        # is not locked), but the slow put's 600 bytes are reserved against the quota.
        started = time.monotonic()
        storage.put("data/aa/other", bytes(250))
        storage.delete("data/aa/small")
        assert time.monotonic() - started < 10
        with pytest.raises(StorageError, match="quota"):
            storage.put("data/aa/too-much", bytes(200))
        assert comet_server.used_bytes(config.bucket_id) == 250
        hold.release.set()
        thread.join(30)
    finally:
        buckets.objects = real
    assert not failures
    assert comet_server.used_bytes(config.bucket_id) == 850
    assert sorted(e.key for e in storage.list("data/")) == ["data/aa/other", "data/aa/slow"]
    storage.put("data/aa/last", bytes(150))  # the reservation went with the commit
    with pytest.raises(StorageError, match="quota"):
        storage.put("data/aa/over", bytes(1))


def test_a_recount_claims_its_bucket_and_counts_puts_under_way_once(
    comet_server: CometTestServer,
) -> None:
    config = comet_server.new_bucket()
    storage = CometStorage(config)
    storage.put("data/aa/1", bytes(100))
    storage.put("data/aa/2", bytes(40))
    buckets = comet_server.stores.buckets
    real = buckets.objects
    buckets.objects = DiesAfterPublish(real)  # type: ignore[assignment]
    try:
        with pytest.raises(StorageError):
            storage.put("data/aa/dead", bytes(300))  # landed, never counted
    finally:
        buckets.objects = real
    # Its instance "died" an hour ago; a start's recount leaves fresh intents alone.
    with psycopg.connect(comet_server.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE bucket_intents SET started_at = now() - interval '1 hour' WHERE bucket_id = %s",
            (config.bucket_id,),
        )
        # Another instance is recounting it (holds its row): skipped, not waited on.
        with conn.transaction():
            conn.execute("SELECT 1 FROM buckets WHERE id = %s FOR UPDATE", (config.bucket_id,))
            assert comet_server.run(buckets.repair_intents()) == 0
    try:
        # A put under way when the recount runs: an overwrite that landed, not yet counted.
        hold, thread, failures = held_put(
            comet_server, storage, "data/aa/2", bytes(70), landed=True
        )
        assert comet_server.run(buckets.repair_intents()) == 1
        assert comet_server.used_bytes(config.bucket_id) == 100 + 40 + 300
        assert comet_server.run(buckets.repair_intents()) == 0  # the fresh one stays
        hold.release.set()
        thread.join(30)
    finally:
        buckets.objects = real
    assert not failures
    assert comet_server.used_bytes(config.bucket_id) == 100 + 70 + 300
    assert comet_server.run(buckets.repair_intents(older_than=timedelta(0))) == 0
