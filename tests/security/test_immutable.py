"""Immutable vaults against an attacker with root on the device.

The attacker holds a copy of everything in a logged-in agent's state directory (the
device token, the wrapped keys) and tries every storage operation within reach: raw
gRPC to the StorageService with the device's bucket credential, the S3 API with the
vault's own keys against a real ``moto_server`` bucket with Object Lock, and the
agent's own CLI. Afterwards every snapshot restores byte for byte and a deep verify
is clean. Retention started by a SUPER admin still removes what the rules say, only
once the protection has ended, into the server's trash, from which an admin restores.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import grpc
import pytest

from comet.agent import protection
from comet.agent.repository.pack import pack_key
from comet.agent.repository.repository import Repository
from comet.agent.storage.object_lock import Protection
from comet.agent.storage.s3 import S3Config, S3Storage
from comet.agent.transport import parse_server_url
from comet.v1 import common_pb2, control_pb2, control_pb2_grpc, storage_pb2, storage_pb2_grpc
from tests.fixtures.moto import ACCESS_KEY, SECRET_KEY
from tests.fixtures.processes import AdminCli, AgentProcess, ServerProcess, wait_for

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.timeout(150)

# S3 Object Lock rules moto_server does not enforce (see the attacker test).
MOTO_GAPS = {"shorten retention", "remove retention"}


def _source(root: Path) -> Path:
    source = root / "src"
    (source / "sub").mkdir(parents=True)
    (source / "payload.bin").write_bytes(os.urandom(600 * 1024 + 7))
    (source / "sub" / "notes.txt").write_text("keep me safe\n" * 2000)
    return source


def _restores_identical(agent: AgentProcess, vault: str, snapshot: str, source: Path) -> None:
    dest = source.parent / f"restore-{vault}-{snapshot[:8]}"
    job = agent.comet(
        "restore", snapshot, "--vault", vault, "--to", str(dest), "--wait", "--json"
    ).json()
    assert job["status"] == "success", job
    out = dest / str(source).lstrip("/")
    for rel in ("payload.bin", "sub/notes.txt"):
        assert (out / rel).read_bytes() == (source / rel).read_bytes(), (vault, rel)


def _verify_clean(agent: AgentProcess, vault: str) -> str:
    """A deep verify succeeds; returns what its log says about the protection."""
    job = agent.comet("verify", "--vault", vault, "--read-data", "--wait", "--json").json()
    assert job["status"] in ("success", "warning"), job
    log = agent.comet("job", "log", job["job_id"], "--json").json()
    assert not [e for e in log["entries"] if e["severity"] == "E"], log
    lines = [e["severity"] + " " + e["message"] for e in log["entries"]]
    return "\n".join(line for line in lines if "immutable vault" in line)


def _refused(call: Callable[[], object]) -> bool:
    try:
        call()
    except (grpc.RpcError, Exception):  # gRPC status, or botocore ClientError
        return True
    return False


def _steal_state(agent: AgentProcess, into: Path) -> dict[str, str]:
    """Everything the attacker copies off the device: the agent's state directory."""
    copy = into / "stolen-state"
    shutil.copytree(agent.state_dir, copy)
    db = sqlite3.connect(copy / "agent.db")
    try:
        rows = dict(db.execute("SELECT key, value FROM settings").fetchall())
    finally:
        db.close()
    return {k: bytes(v).decode(errors="replace") for k, v in rows.items()}


class GrpcAttacker:
    """Raw StorageService calls with the device's own bucket credential."""

    def __init__(self, server_url: str, token: str) -> None:
        self.channel = grpc.insecure_channel(parse_server_url(server_url).target)
        self.agent = control_pb2_grpc.AgentServiceStub(self.channel)
        self.storage = storage_pb2_grpc.StorageServiceStub(self.channel)
        self.device_md = (("authorization", f"Bearer {token}"),)

    def profile(self) -> common_pb2.Profile:
        return self.agent.GetProfile(
            control_pb2.GetProfileRequest(), metadata=self.device_md, timeout=10
        )

    def attack(self, bucket_id: str, key: str) -> list[str]:
        """Every destructive call on every object; returns those that went through."""
        md = (("x-comet-bucket", bucket_id), ("x-comet-bucket-key", key))
        keys = [
            o.key
            for o in self.storage.List(storage_pb2.ListObjectsRequest(), metadata=md, timeout=10)
        ]
        assert any(k.startswith("snapshots/") for k in keys) and any(
            k.startswith("data/") for k in keys
        )
        forged = f"g1.{bucket_id}.*.{int(time.time()) + 3600}.AAAA"
        went_through: list[str] = []

        def put(name: str, data: bytes, size: int | None = None) -> Callable[[], object]:
            chunk = storage_pb2.PutObjectChunk(
                key=name, data=data, total_size=len(data) if size is None else size
            )
            return lambda: self.storage.Put(iter([chunk]), metadata=md, timeout=10)

        for name in keys:
            if name.startswith("locks/"):
                continue
            attempts = {
                "delete": lambda n=name: self.storage.Delete(
                    storage_pb2.DeleteObjectRequest(key=n), metadata=md, timeout=10
                ),
                "delete with forged grant": lambda n=name: self.storage.Delete(
                    storage_pb2.DeleteObjectRequest(key=n),
                    metadata=(*md, ("x-comet-delete-grant", forged)),
                    timeout=10,
                ),
                "overwrite": put(name, os.urandom(64)),
                "truncate": put(name, b""),
                "overwrite announced short": put(name, b"x", 1),
            }
            for what, call in attempts.items():
                if not _refused(call):
                    went_through.append(f"{what} {name}")
        # A delete grant needs the user's password again.
        if not _refused(
            lambda: self.agent.RequestDeleteGrant(
                control_pb2.DeleteGrantRequest(bucket_id=bucket_id, auth_key=b"\0" * 32),
                metadata=self.device_md,
                timeout=10,
            )
        ):
            went_through.append("delete grant without the password")
        # Lock objects are mutable but live apart: they hide nothing.
        assert not _refused(put("locks/" + "ab" * 32, b"junk"))
        return went_through


def _s3_attack(endpoint: str, s3: common_pb2.S3VaultSettings) -> list[str]:
    """The S3 API with the vault's own keys; returns destructive calls that went through
    (a delete marker or a newer version is not destructive: the original stays)."""
    client: S3Client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        region_name="us-east-1",
    )
    bucket, prefix = s3.bucket, s3.prefix
    went_through: list[str] = []
    try:
        versions = client.list_object_versions(Bucket=bucket, Prefix=prefix).get("Versions", [])
        assert versions
        later = datetime.now(UTC) + timedelta(seconds=1)
        for version in versions:
            name, vid = version["Key"], version["VersionId"]
            if "/locks/" in name:
                continue
            attempts: dict[str, Callable[[], object]] = {
                "delete version": lambda n=name, v=vid: client.delete_object(
                    Bucket=bucket, Key=n, VersionId=v
                ),
                "delete version bypassing governance": lambda n=name, v=vid: client.delete_object(
                    Bucket=bucket, Key=n, VersionId=v, BypassGovernanceRetention=True
                ),
                "shorten retention": lambda n=name, v=vid: client.put_object_retention(
                    Bucket=bucket,
                    Key=n,
                    VersionId=v,
                    Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later},
                    BypassGovernanceRetention=True,
                ),
                "remove retention": lambda n=name, v=vid: client.put_object_retention(
                    Bucket=bucket,
                    Key=n,
                    VersionId=v,
                    Retention={},
                    BypassGovernanceRetention=True,
                ),
            }
            for what, call in attempts.items():
                if not _refused(call):
                    went_through.append(f"{what} {name}")
            # These "succeed" on a versioned bucket but only hide the original.
            client.put_object(Bucket=bucket, Key=name, Body=b"garbage")
            client.put_object(Bucket=bucket, Key=name, Body=b"")
            client.delete_object(Bucket=bucket, Key=name)
        # Removing the bucket's Object Lock configuration is refused too.
        if not _refused(
            lambda: client.put_object_lock_configuration(
                Bucket=bucket,
                ObjectLockConfiguration={"ObjectLockEnabled": "Disabled"},  # type: ignore[typeddict-item]
            )
        ):
            state = client.get_object_lock_configuration(Bucket=bucket)
            if state.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
                went_through.append("object lock disabled")
        if not _refused(lambda: client.delete_bucket(Bucket=bucket)):
            went_through.append("bucket deleted")
    finally:
        client.close()
    return went_through


def test_an_attacker_with_the_agents_state_cannot_destroy_immutable_vaults(
    alice: AgentProcess,
    server: ServerProcess,
    short_tmp: Path,
    moto_endpoint: str,
    moto_client: S3Client,
) -> None:
    source = _source(short_tmp)
    locked = f"lock-{uuid.uuid4().hex[:12]}"
    moto_client.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    plain = f"plain-{uuid.uuid4().hex[:12]}"
    moto_client.create_bucket(Bucket=plain)
    s3_args = ("--endpoint", moto_endpoint, "--access-key", ACCESS_KEY, "--secret-key-stdin")

    # Vault types that cannot enforce it say so, and nothing is added.
    local = alice.comet(
        "vault", "add", "loc", "--type", "local", "--path", str(short_tmp / "v"),
        "--immutable-days", "7", check=False,
    )  # fmt: skip
    assert local.returncode != 0 and "cannot be immutable" in local.stderr
    no_lock = alice.comet(
        "vault", "add", "nolock", "--type", "s3", "--bucket", plain, *s3_args,
        "--immutable-days", "7", stdin=SECRET_KEY + "\n", check=False,
    )  # fmt: skip
    assert no_lock.returncode != 0 and "does not have Object Lock enabled" in no_lock.stderr

    alice.comet("vault", "add", "srv", "--type", "comet", "--immutable-days", "30")
    alice.comet(
        "vault", "add", "s3v", "--type", "s3", "--bucket", locked, "--prefix", "vault/",
        *s3_args, "--immutable-days", "30", "--object-lock-mode", "compliance",
        stdin=SECRET_KEY + "\n",
    )  # fmt: skip
    listed = {v["name"]: v for v in alice.comet("vault", "list", "--json").json()}
    assert set(listed) >= {"srv", "s3v"} and "nolock" not in listed and "loc" not in listed
    assert listed["srv"]["immutable_days"] == 30 and listed["srv"]["protected_until"]

    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    snapshots = {}
    for vault in ("srv", "s3v"):
        job = alice.comet("backup", "docs", "--vault", vault, "--wait", "--json").json()
        assert job["status"] == "success", job
        snapshots[vault] = job["snapshot_id"]

    # Every pack, index and snapshot in S3 carries a retain-until date.
    for version in moto_client.list_object_versions(Bucket=locked)["Versions"]:
        if "/locks/" in version["Key"]:
            continue
        head = moto_client.head_object(
            Bucket=locked, Key=version["Key"], VersionId=version["VersionId"]
        )
        assert head.get("ObjectLockMode") == "COMPLIANCE", version["Key"]
        assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=29)

    # --- the attack, with nothing but a copy of the state directory
    stolen = _steal_state(alice, short_tmp)
    attacker = GrpcAttacker(stolen["server"], stolen["device_token"])
    try:
        vaults = {v.name: v for v in attacker.profile().vaults}
        bucket_id, bucket_key = vaults["srv"].comet.bucket_id, vaults["srv"].comet.bucket_key
        assert attacker.attack(bucket_id, bucket_key) == []
        went_through = _s3_attack(moto_endpoint, vaults["s3v"].s3)
        # moto 5 does not enforce COMPLIANCE on PutObjectRetention (AWS refuses to
        # shorten or remove a compliance retention: "AccessDenied"); the deletes that
        # would follow are refused while the lock holds, which moto does enforce. When
        # moto learns it, this assertion says so and the gap list can go.
        gaps = {what.rsplit(" ", 1)[0] for what in went_through}
        assert gaps <= MOTO_GAPS, went_through
    finally:
        attacker.channel.close()
    # The agent's own CLI: deleting snapshots fails on both vaults.
    for vault in ("srv", "s3v"):
        alice.comet("delete-snapshot", "--vault", vault, snapshots[vault], "--wait", check=False)

    # --- afterwards: everything restores byte for byte, and a deep verify is clean
    for vault in ("srv", "s3v"):
        listed_snaps = alice.comet("snapshots", "--vault", vault, "--json").json()
        assert snapshots[vault] in {s["snapshot_id"] for s in listed_snaps}, vault
        _restores_identical(alice, vault, snapshots[vault], source)
        if vault == "s3v":
            # moto let the attacker shorten and remove the locks (AWS would not), and
            # verify notices; the next retention pass locks what is in use again.
            assert "are no longer protected" in _verify_clean(alice, vault)
            job = alice.comet("retention", "--vault", vault, "--wait", "--json").json()
            assert job["status"] == "success", job
        assert "I immutable vault: all" in _verify_clean(alice, vault), vault


def _device_id(agent: AgentProcess) -> str:
    device: str = agent.status()["device_id"]
    return device


def test_admin_retention_waits_for_the_protection_and_the_trash_undeletes(
    alice: AgentProcess, server: ServerProcess, admin: AdminCli, short_tmp: Path
) -> None:
    protection = 12  # long enough for two small backups and a retention pass
    source = _source(short_tmp)
    alice.comet(
        "vault", "add", "short", "--type", "comet", "--immutable-seconds", str(protection),
        "--keep-last", "1",
    )  # fmt: skip
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    started = time.monotonic()
    first = alice.comet("backup", "docs", "--vault", "short", "--wait", "--json").json()
    (source / "payload.bin").write_bytes(os.urandom(300 * 1024))
    second = alice.comet("backup", "docs", "--vault", "short", "--wait", "--json").json()
    written = time.monotonic()
    assert first["status"] == second["status"] == "success"
    [bucket] = [b for b in admin("bucket", "list", "--json").json() if b["user"] == "alice"]
    assert bucket["immutable_seconds"] == protection
    device = _device_id(alice)

    def retention() -> dict[str, Any]:
        reply: dict[str, Any] = admin(
            "dispatch", "retention", "--device", device, "--vault", "short", "--wait", "--json"
        ).json()
        return reply

    def snapshot_ids() -> set[str]:
        rows = alice.comet("snapshots", "--vault", "short", "--json").json()
        return {s["snapshot_id"] for s in rows}

    # Within the protection: the rules say "keep 1", but nothing can go yet.
    retention()
    assert time.monotonic() - started < protection, "too slow to test within the protection"
    assert snapshot_ids() == {first["snapshot_id"], second["snapshot_id"]}

    # The user's own CLI cannot remove anything, even after the protection.
    time.sleep(max(0.0, protection + 0.5 - (time.monotonic() - written)))
    alice.comet("delete-snapshot", "--vault", "short", first["snapshot_id"], "--wait", check=False)
    assert first["snapshot_id"] in snapshot_ids()
    # Nor with a wrong password: the server grants deletes only for the right one.
    wrong = alice.comet(
        "retention", "--vault", "short", "--password-stdin", "--wait",
        stdin="not-alices-password\n", check=False,
    )  # fmt: skip
    assert wrong.returncode != 0 and "wrong password" in wrong.stderr, wrong.stderr
    assert first["snapshot_id"] in snapshot_ids()

    # After it, the admin's retention removes what the rules say, into the trash.
    retention()
    assert snapshot_ids() == {second["snapshot_id"]}
    [bucket] = [b for b in admin("bucket", "list", "--json").json() if b["user"] == "alice"]
    assert bucket["trash_objects"] >= 1
    # The trash is no object a device can see or name; the retention re-protected
    # what the remaining snapshot still needs (its objects had passed their protection).
    assert "are protected (until" in _verify_clean(alice, "short")

    restored = admin("bucket", "undelete", bucket["bucket_id"], "--all", "--json").json()
    assert f"snapshots/{first['snapshot_id']}" in restored["restored"]
    assert snapshot_ids() == {first["snapshot_id"], second["snapshot_id"]}
    _verify_clean(alice, "short")
    (source / "payload.bin").unlink()
    shutil.rmtree(source / "sub")
    dest = short_tmp / "back"
    job = alice.comet(
        "restore", first["snapshot_id"], "--vault", "short", "--to", str(dest), "--wait", "--json"
    ).json()
    assert job["status"] == "success", job
    assert (dest / str(source).lstrip("/") / "sub" / "notes.txt").read_text().startswith("keep")


def test_retention_extends_the_object_lock_of_what_snapshots_still_need(
    moto_endpoint: str, moto_client: S3Client
) -> None:
    """Kopia's rule: before a pack in use loses its lock, maintenance extends it."""
    bucket = f"lock-{uuid.uuid4().hex[:12]}"
    moto_client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    config = S3Config(
        moto_endpoint, bucket, "v/", ACCESS_KEY, SECRET_KEY, protection=Protection(600)
    )
    storage = S3Storage(config)
    storage.check_object_lock()
    vault_key = os.urandom(32)
    Repository.init(storage, vault_key).close()
    repo = Repository.open(storage, vault_key)
    try:
        repo.storage.put(pack_key(b"\x01" * 32), b"not really a pack")
        now = datetime.now(UTC)
        before = protection.report(repo, now)
        assert before is not None and before.ok and before.checked >= 2
        assert protection.extend(repo, 600, now) == 0  # a full period left: nothing to do
        later = now + timedelta(seconds=400)  # under half the period left
        assert protection.extend(repo, 600, later) == before.checked
        after = protection.report(repo, later)
        assert after is not None and after.ok
        assert after.earliest is not None and after.earliest >= later + timedelta(seconds=599)
    finally:
        repo.close()
    with pytest.raises(Exception, match="does not have Object Lock"):
        plain = f"plain-{uuid.uuid4().hex[:12]}"
        moto_client.create_bucket(Bucket=plain)
        S3Storage(dataclasses.replace(config, bucket=plain)).check_object_lock()


def test_scheduled_retention_deletes_only_inside_the_policys_retention_window(
    alice: AgentProcess, admin: AdminCli, short_tmp: Path
) -> None:
    protection = 6
    source = _source(short_tmp)
    alice.comet(
        "vault", "add", "short", "--type", "comet", "--immutable-seconds", str(protection),
        "--keep-last", "1",
    )  # fmt: skip
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    alice.comet("schedule", "add", "--item", "docs", "--vault", "short", "--every", "2")

    def snapshots() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = alice.comet("snapshots", "--vault", "short", "--json").json()
        return sorted(rows, key=lambda s: str(s["time"]))

    def grants(success: bool) -> list[dict[str, Any]]:
        rows = admin("audit", "--action", "bucket.delete_grant", "--json").json()
        return [r for r in rows if r["success"] is success and "scheduled" in r["details"]]

    first = wait_for(snapshots, timeout=30, what="a first scheduled backup")[0]["snapshot_id"]
    # Without a retention window in the policy, the schedule's retention gets no grant:
    # past the protection, the first snapshot is still there.
    wait_for(lambda: grants(False), timeout=30, what="a refused scheduled grant")
    time.sleep(protection + 2)
    wait_for(lambda: len(grants(False)) >= 2, timeout=30, what="another refused grant")
    assert first in {s["snapshot_id"] for s in snapshots()}
    assert not grants(True)

    # An administrator's policy opens a window around now: the next scheduled retention
    # removes what the rules say (keep the last one), into the server's trash.
    opened = datetime.now(UTC) - timedelta(minutes=30)
    window = {"start_minute": opened.hour * 60 + opened.minute, "minutes": 120}
    policy_file = short_tmp / "policy.json"
    policy_file.write_text(json.dumps({"name": "prune", "retention_window": window}))
    policy = admin("policy", "create", "prune", "--file", str(policy_file), "--json").json()
    admin("policy", "assign", "alice", policy["policy_id"])
    wait_for(
        lambda: first not in {s["snapshot_id"] for s in snapshots()},
        timeout=40,
        what="the scheduled retention to delete the first snapshot",
    )
    assert grants(True)
    [bucket] = [b for b in admin("bucket", "list", "--json").json() if b["user"] == "alice"]
    assert bucket["trash_objects"] >= 1
    alice.comet("schedule", "list")  # the agent is still fine
