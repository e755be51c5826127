"""Immutable buckets through the real RPC layer, in process, with a fake clock:
no overwrite, no delete without a grant, nothing deleted within the protection by
anyone, grants expire, deletes go to the trash, undelete and purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from comet.server.store.accounts import Role
from comet.v1 import admin_pb2, common_pb2, control_pb2, storage_pb2, storage_pb2_grpc
from tests.server.conftest import FakeClock, RpcServer, auth_key, expect_error

pytestmark = pytest.mark.timeout(60)
HOUR = 3600


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
