"""Immutable buckets through the real RPC layer, in process, with a fake clock:
no overwrite, no delete without a grant, nothing deleted within the protection by
anyone, grants expire, deletes go to the trash, undelete and purge."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from comet.server.app import Stores, open_stores
from comet.server.buckets.retention_window import window_end
from comet.server.secret_box import SecretBox
from comet.server.store.accounts import Role
from comet.v1 import admin_pb2, common_pb2, control_pb2, storage_pb2, storage_pb2_grpc
from tests.fixtures.comet_server import BUCKET_STORES, s3_bucket_config
from tests.server.conftest import TEST_CONFIG, FakeClock, RpcServer, auth_key, expect_error

pytestmark = pytest.mark.timeout(60)
HOUR = 3600


@pytest.fixture(params=BUCKET_STORES)
def stores(
    request: pytest.FixtureRequest,
    engine: AsyncEngine,
    clock: FakeClock,
    secret_box: SecretBox,
    tmp_path: Path,
) -> Stores:
    """Every rule here holds for buckets in a directory and in an object store."""
    config = dataclasses.replace(TEST_CONFIG, bucket_dir=tmp_path / "buckets")
    if request.param == "s3":
        config = s3_bucket_config(tmp_path, request.getfixturevalue("moto_endpoint"))
    return open_stores(engine, clock, config, secret_box)


async def test_an_immutable_bucket_only_deletes_with_a_grant_past_its_protection(
    rpc: RpcServer, clock: FakeClock
) -> None:
    clock.current = datetime.now(UTC)
    await rpc.add_user("alice")
    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    alice = await rpc.device("alice")
    admin = await rpc.session("root")
    created = await rpc.agent.CreateBucket(
        control_pb2.CreateBucketRequest(immutable_seconds=HOUR), metadata=alice.metadata
    )
    assert created.immutable_seconds == HOUR
    md = (("x-comet-bucket", created.bucket_id), ("x-comet-bucket-key", created.bucket_key))
    channel = grpc.aio.insecure_channel(rpc.target)
    storage = storage_pb2_grpc.StorageServiceStub(channel)

    async def put(key: str, data: bytes) -> None:
        chunk = storage_pb2.PutObjectChunk(key=key, data=data, total_size=len(data))
        await storage.Put(iter([chunk]), metadata=md)

    def delete(key: str, grant: str = "") -> object:
        extra = (("x-comet-delete-grant", grant),) if grant else ()
        return storage.Delete(storage_pb2.DeleteObjectRequest(key=key), metadata=(*md, *extra))

    try:
        await put("snapshots/s1", b"first")
        await put("snapshots/s1", b"first")  # a retry of the same bytes is fine
        denied = grpc.StatusCode.PERMISSION_DENIED
        await expect_error(put("snapshots/s1", b"other"), denied, "cannot be overwritten")
        await expect_error(delete("snapshots/s1"), denied, "need a grant")
        await put("locks/l1", b"a")
        await put("locks/l1", b"b")  # locks stay mutable
        await delete("locks/l1")
        stat = await storage.Stat(storage_pb2.StatObjectRequest(key="snapshots/s1"), metadata=md)
        assert stat.HasField("protected_until")
        assert stat.protected_until.ToDatetime(tzinfo=UTC) > clock.current + timedelta(minutes=59)

        await expect_error(
            rpc.agent.RequestDeleteGrant(
                control_pb2.DeleteGrantRequest(
                    bucket_id=created.bucket_id, auth_key=auth_key("wrong password")
                ),
                metadata=alice.metadata,
            ),
            grpc.StatusCode.UNAUTHENTICATED,
            "wrong password",
        )
        grant = await rpc.agent.RequestDeleteGrant(
            control_pb2.DeleteGrantRequest(bucket_id=created.bucket_id, auth_key=auth_key()),
            metadata=alice.metadata,
        )
        # Within the protection nobody deletes: not the user's grant, not an admin's.
        await expect_error(delete("snapshots/s1", grant.grant), denied, "protected until")
        await expect_error(
            rpc.admin.DeleteBucket(
                admin_pb2.DeleteBucketRequest(bucket_id=created.bucket_id),
                metadata=admin.metadata,
            ),
            denied,
            "cannot be deleted before then",
        )
        clock.advance(seconds=2 * HOUR)
        await expect_error(delete("snapshots/s1", grant.grant), denied, "expired")
        admin = await rpc.session("root")  # sessions expire too
        admin_grant = await rpc.admin.GrantBucketDelete(
            admin_pb2.GrantBucketDeleteRequest(bucket_id=created.bucket_id),
            metadata=admin.metadata,
        )
        await delete("snapshots/s1", admin_grant.grant)
        await expect_error(
            storage.Stat(storage_pb2.StatObjectRequest(key="snapshots/s1"), metadata=md),
            grpc.StatusCode.NOT_FOUND,
            "does not exist",
        )
        [info] = (
            await rpc.admin.ListBuckets(admin_pb2.ListBucketsRequest(), metadata=admin.metadata)
        ).buckets
        assert (info.immutable_seconds, info.trash_objects, info.trash_bytes) == (HOUR, 1, 5)

        restored = await rpc.admin.UndeleteObjects(
            admin_pb2.UndeleteObjectsRequest(bucket_id=created.bucket_id, keys=["snapshots/s1"]),
            metadata=admin.metadata,
        )
        assert list(restored.restored) == ["snapshots/s1"]
        data = b"".join(
            [
                c.data
                async for c in storage.Get(
                    storage_pb2.GetObjectRequest(key="snapshots/s1", to_end=True), metadata=md
                )
            ]
        )
        assert data == b"first"

        # Deleted again, the trash keeps it one protection period, then purges it.
        await delete("snapshots/s1", admin_grant.grant)
        assert await rpc.stores.buckets.purge_trash() == 0
        clock.advance(seconds=HOUR + 1)
        assert await rpc.stores.buckets.purge_trash() == 1
        assert await rpc.stores.buckets.trash_entries(created.bucket_id) == []
    finally:
        await channel.close()


async def test_a_policy_can_force_immutable_buckets(rpc: RpcServer) -> None:
    await rpc.add_user("bob")
    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    root = await rpc.session("root")
    policy = await rpc.admin.PutPolicy(
        common_pb2.Policy(name="ransomware-safe", force_immutable_days=7), metadata=root.metadata
    )
    await rpc.admin.AssignPolicy(
        admin_pb2.AssignPolicyRequest(username="bob", policy_id=policy.policy_id),
        metadata=root.metadata,
    )
    bob = await rpc.device("bob")
    for weaker in (
        control_pb2.CreateBucketRequest(),
        control_pb2.CreateBucketRequest(immutable_days=6),
    ):
        await expect_error(
            rpc.agent.CreateBucket(weaker, metadata=bob.metadata),
            grpc.StatusCode.PERMISSION_DENIED,
            "--immutable-days 7",
        )
    made = await rpc.agent.CreateBucket(
        control_pb2.CreateBucketRequest(immutable_days=7), metadata=bob.metadata
    )
    assert made.immutable_seconds == 7 * 86400
    profile = await rpc.agent.GetProfile(control_pb2.GetProfileRequest(), metadata=bob.metadata)
    assert profile.policy.force_immutable_days == 7  # the agent refuses early with it


class _Bucket:
    """A device's immutable bucket, through the real storage RPCs."""

    def __init__(self, rpc: RpcServer, bucket_id: str, key: str) -> None:
        self.bucket_id = bucket_id
        self.md = (("x-comet-bucket", bucket_id), ("x-comet-bucket-key", key))
        self.channel = grpc.aio.insecure_channel(rpc.target)
        self.stub = storage_pb2_grpc.StorageServiceStub(self.channel)

    async def put(self, key: str, data: bytes) -> None:
        chunk = storage_pb2.PutObjectChunk(key=key, data=data, total_size=len(data))
        await self.stub.Put(iter([chunk]), metadata=self.md)

    async def delete(self, key: str, grant: str) -> None:
        extra = (("x-comet-delete-grant", grant),)
        await self.stub.Delete(
            storage_pb2.DeleteObjectRequest(key=key), metadata=(*self.md, *extra)
        )

    async def exists(self, key: str) -> bool:
        names = [
            o.key async for o in self.stub.List(storage_pb2.ListObjectsRequest(), metadata=self.md)
        ]
        return key in names

    async def extend(self, key: str) -> datetime:
        stat = await self.stub.ExtendProtection(
            storage_pb2.ExtendProtectionRequest(key=key), metadata=self.md
        )
        return stat.protected_until.ToDatetime(tzinfo=UTC)


async def _immutable_bucket(rpc: RpcServer, metadata: object) -> _Bucket:
    created = await rpc.agent.CreateBucket(
        control_pb2.CreateBucketRequest(immutable_seconds=HOUR), metadata=metadata
    )
    return _Bucket(rpc, created.bucket_id, created.bucket_key)


async def test_the_policys_retention_window_grants_scheduled_deletes_and_nothing_else(
    rpc: RpcServer, clock: FakeClock
) -> None:
    # The policy's window opened 30 minutes ago and lasts two hours (objects are dated
    # by the real clock, so the fake one starts now).
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    clock.current = start + timedelta(seconds=1)
    opened = start - timedelta(minutes=30)
    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    await rpc.add_user("bob")
    await rpc.add_user("carol")
    root = await rpc.session("root")
    policy = await rpc.admin.PutPolicy(
        common_pb2.Policy(
            name="nightly-prune",
            retention_window=common_pb2.RetentionWindow(
                start_minute=opened.hour * 60 + opened.minute, minutes=120
            ),
        ),
        metadata=root.metadata,
    )
    await rpc.admin.AssignPolicy(
        admin_pb2.AssignPolicyRequest(username="bob", policy_id=policy.policy_id),
        metadata=root.metadata,
    )
    bob, carol = await rpc.device("bob"), await rpc.device("carol")
    bobs, carols = (
        await _immutable_bucket(rpc, bob.metadata),
        await _immutable_bucket(rpc, carol.metadata),
    )

    def scheduled(device_md: object, bucket_id: str) -> object:
        return rpc.agent.RequestDeleteGrant(
            control_pb2.DeleteGrantRequest(bucket_id=bucket_id, scheduled=True),
            metadata=device_md,
        )

    denied = grpc.StatusCode.PERMISSION_DENIED
    try:
        await bobs.put("snapshots/old", b"old")
        await carols.put("snapshots/old", b"old")
        # Without the policy: no grant, however the device asks.
        await expect_error(scheduled(carol.metadata, carols.bucket_id), denied, "retention window")
        # Never for another account's bucket.
        await expect_error(
            scheduled(bob.metadata, carols.bucket_id), grpc.StatusCode.NOT_FOUND, "no bucket"
        )
        grant = await scheduled(bob.metadata, bobs.bucket_id)
        assert isinstance(grant, control_pb2.DeleteGrant)
        assert grant.expires_at.ToDatetime(tzinfo=UTC) == clock.current + timedelta(hours=1)
        # Within the protection, the grant deletes nothing.
        await expect_error(bobs.delete("snapshots/old", grant.grant), denied, "protected until")

        # Past the protection, the window's grant ends with the window.
        clock.advance(seconds=HOUR + 5 * 60)
        late = await scheduled(bob.metadata, bobs.bucket_id)
        assert isinstance(late, control_pb2.DeleteGrant)
        assert late.expires_at.ToDatetime(tzinfo=UTC) == opened + timedelta(minutes=120)
        await bobs.delete("snapshots/old", late.grant)
        assert not await bobs.exists("snapshots/old")
        assert [e.key for e in await rpc.stores.buckets.trash_entries(bobs.bucket_id)] == [
            "snapshots/old"
        ]
        # Carol's device, with Bob's grant or none, still deletes nothing.
        await expect_error(carols.delete("snapshots/old", late.grant), denied, "not for this vault")

        # The window has closed, and so has the grant.
        clock.advance(seconds=35 * 60)
        await bobs.put("snapshots/new", b"new")
        await expect_error(bobs.delete("snapshots/new", late.grant), denied, "expired")
        await expect_error(scheduled(bob.metadata, bobs.bucket_id), denied, "retention window")

        root = await rpc.session("root")
        audit = await rpc.admin.ListAudit(admin_pb2.ListAuditRequest(), metadata=root.metadata)
        grants = [
            (e.actor, e.success, "scheduled" in e.details)
            for e in audit.events
            if e.action == "bucket.delete_grant"
        ]
        assert sorted(grants) == sorted(
            [
                ("carol", False, True),
                ("bob", False, True),
                ("bob", True, True),
                ("bob", True, True),
                ("bob", False, True),
            ]
        )
    finally:
        await bobs.channel.close()
        await carols.channel.close()


async def test_retention_re_protects_what_snapshots_still_need(
    rpc: RpcServer, clock: FakeClock
) -> None:
    clock.current = datetime.now(UTC)
    await rpc.add_user("alice")
    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    alice = await rpc.device("alice")
    bucket = await _immutable_bucket(rpc, alice.metadata)
    denied = grpc.StatusCode.PERMISSION_DENIED
    try:
        await bucket.put("data/pack-in-use", b"needed")
        await bucket.put("data/pack-unused", b"garbage")
        clock.advance(seconds=50 * 60)
        until = await bucket.extend("data/pack-in-use")
        assert until == clock.current + timedelta(seconds=HOUR)
        # Asking again a moment later never shortens it.
        clock.advance(seconds=-60)
        assert await bucket.extend("data/pack-in-use") == until
        clock.advance(seconds=60)
        await expect_error(bucket.extend("data/missing"), grpc.StatusCode.NOT_FOUND, "does not")

        # After the first protection, a grant removes only what was not re-protected.
        clock.advance(seconds=20 * 60)
        root = await rpc.session("root")
        grant = await rpc.admin.GrantBucketDelete(
            admin_pb2.GrantBucketDeleteRequest(bucket_id=bucket.bucket_id),
            metadata=root.metadata,
        )
        await bucket.delete("data/pack-unused", grant.grant)
        await expect_error(bucket.delete("data/pack-in-use", grant.grant), denied, "protected")
        assert await bucket.exists("data/pack-in-use")
        clock.advance(seconds=HOUR)
        grant = await rpc.admin.GrantBucketDelete(
            admin_pb2.GrantBucketDeleteRequest(bucket_id=bucket.bucket_id),
            metadata=(await rpc.session("root")).metadata,
        )
        await bucket.delete("data/pack-in-use", grant.grant)
        assert not await bucket.exists("data/pack-in-use")
    finally:
        await bucket.channel.close()


async def test_deleting_a_user_says_which_immutable_buckets_it_had_to_keep(
    rpc: RpcServer, clock: FakeClock
) -> None:
    clock.current = datetime.now(UTC)
    await rpc.add_user("dave")
    await rpc.add_user("root", role=Role.SUPER_ADMIN)
    dave = await rpc.device("dave")
    kept = await _immutable_bucket(rpc, dave.metadata)
    plain = await rpc.agent.CreateBucket(control_pb2.CreateBucketRequest(), metadata=dave.metadata)
    try:
        await kept.put("snapshots/s1", b"x")
    finally:
        await kept.channel.close()
    root = await rpc.session("root")
    reply = await rpc.admin.DeleteUser(
        admin_pb2.DeleteUserRequest(username="dave"), metadata=root.metadata
    )
    assert list(reply.kept_bucket_ids) == [kept.bucket_id]
    left = await rpc.stores.buckets.list_buckets(username="dave")
    assert [b.bucket_id for b in left] == [kept.bucket_id]
    assert plain.bucket_id not in {b.bucket_id for b in left}
    audit = await rpc.admin.ListAudit(admin_pb2.ListAuditRequest(), metadata=root.metadata)
    [event] = [e for e in audit.events if e.action == "user.delete"]
    assert event.details.startswith("deleted 1 bucket(s)"), event.details
    assert f"kept 1 immutable bucket(s) still under protection: {kept.bucket_id}" in event.details


def test_a_retention_window_may_run_past_midnight() -> None:
    late = {"retention_window": {"start_minute": 23 * 60, "minutes": 120}}  # 23:00-01:00
    day = datetime(2026, 3, 2, tzinfo=UTC)
    closes = day + timedelta(days=1, hours=1)
    assert window_end(late, day + timedelta(hours=23, minutes=30)) == closes
    assert window_end(late, day + timedelta(days=1, minutes=59)) == closes
    assert window_end(late, day + timedelta(days=1, hours=1)) is None
    assert window_end(late, day + timedelta(hours=22, minutes=59)) is None
    assert window_end({}, day) is None
    assert window_end({"retention_window": {"start_minute": 0}}, day) is None
