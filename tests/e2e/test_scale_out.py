"""Three ``comet-server`` instances on one PostgreSQL, their buckets in one object store
(moto_server), behind nginx: the instances hold nothing another one needs.

- Parallel uploads from 10 devices of one account, spread over the three instances,
  never overrun the account's quota, and the usage PostgreSQL counts is exactly what
  the store holds.
- A backup into a server bucket loses one instance mid-upload (SIGSTOPped while a
  pack is streaming to it, then SIGKILLed): the agent's retry completes it through
  another instance, and a restore served by the third alone is byte-identical."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from comet.agent.storage.base import StorageError
from comet.agent.storage.comet import CometStorage, CometStorageConfig
from tests.fixtures.devices import DeviceClient
from tests.fixtures.moto import ACCESS_KEY, SECRET_KEY
from tests.fixtures.nginx import NginxProcess
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import AdminCli, AgentProcess, ServerProcess, free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.timeout(120)

PASSWORD = "device-password-1"
PIECE = 256 * 1024
QUOTA_PIECES = 10
DEVICES = 10
PUT_PATH = "/comet.v1.StorageService/Put"
GET_PATH = "/comet.v1.StorageService/Get"


@dataclass
class ScaleOut:
    servers: list[ServerProcess]
    nginx: NginxProcess
    admin: AdminCli
    ca_pem: bytes
    store_bucket: str


@pytest.fixture(scope="module")
def scale_root() -> Iterator[Path]:
    """A short path (unix sockets), reachable by the postgres OS user."""
    path = Path(tempfile.mkdtemp(prefix="comet-", dir="/tmp"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def scale_out(
    postgres_cluster: PostgresCluster, scale_root: Path, moto_client: S3Client, moto_endpoint: str
) -> Iterator[ScaleOut]:
    """Shared by this module's tests, in order: the last one kills instances."""
    short_tmp = scale_root
    store_bucket = f"scale-{os.urandom(6).hex()}"
    moto_client.create_bucket(Bucket=store_bucket)
    url = postgres_cluster.fresh_database()
    env = {"COMET_S3_ACCESS_KEY_ID": ACCESS_KEY, "COMET_S3_SECRET_ACCESS_KEY": SECRET_KEY}
    store = ("--bucket-store", f"s3://{store_bucket}/comet", "--s3-endpoint", moto_endpoint)
    first = ServerProcess(short_tmp / "s1", url, free_port(), extra_args=store, env=env)
    first.data_dir.mkdir()
    first.add_admin()
    first.start()  # creates the secret key the other instances share
    shared = ("--secret-key-file", str(first.data_dir / "secret.key"))
    others = [
        ServerProcess(short_tmp / f"s{n}", url, free_port(), extra_args=store + shared, env=env)
        for n in (2, 3)
    ]
    for server in others:
        server.data_dir.mkdir()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(ServerProcess.start, others))
    servers = [first, *others]
    # The first instance takes most calls, so the backup below streams packs to it.
    nginx = NginxProcess(short_tmp / "nginx", [s.port for s in servers], weights=[8, 1, 1])
    admin = AdminCli(short_tmp / "admin.json", first)
    admin(
        "login", "--server", nginx.url, "--username", "admin", "--password-stdin",
        "--trust-fingerprint", nginx.fingerprint, stdin="admin-password-1\n",
    )  # fmt: skip
    try:
        yield ScaleOut(
            servers, nginx, admin, (nginx.root / "tls" / "server.crt").read_bytes(), store_bucket
        )
    finally:
        nginx.stop()
        for server in servers:
            if server.proc is not None:
                server.proc.send_signal(signal.SIGCONT)
            server.kill()


def stored_bytes(client: S3Client, bucket: str, bucket_id: str) -> int:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"comet/{bucket_id}/")
    return sum(item["Size"] for item in listed.get("Contents", []))


def queued_bytes(port: int) -> int:
    """Bytes waiting in the receive queues of connections to ``port`` on this host
    (from /proc/net/tcp{,6}; the server's dual-stack socket shows up in the latter):
    an upload streaming to a stopped instance piles up there."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == port and fields[3] == "01":  # ESTABLISHED
                total += int(fields[4].partition(":")[2], 16)
    return total


def catch_a_pack_upload(server: ServerProcess, finished: Callable[[], bool]) -> bool:
    """Stop ``server`` until a pack upload (over 32 KiB queued: more than any small
    call sends) waits in its receive queue; smaller calls are let through. False if
    ``finished`` first."""
    assert server.proc is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not finished():
        server.proc.send_signal(signal.SIGSTOP)
        waited = time.monotonic()
        while time.monotonic() - waited < 1.0 and not finished():
            if queued_bytes(server.port) > 32 * 1024:
                return True
            time.sleep(0.02)
        server.proc.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    return False


def test_quota_holds_across_instances_under_parallel_uploads(
    scale_out: ScaleOut, moto_client: S3Client, scale_root: Path
) -> None:
    short_tmp = scale_root
    admin = scale_out.admin
    admin("user", "add", "many", "--password-stdin", stdin=PASSWORD + "\n")
    policy_file = short_tmp / "quota.json"
    policy_file.write_text(f'{{"storage_quota_bytes": "{QUOTA_PIECES * PIECE}"}}')
    policy = admin("policy", "create", "quota", "--file", str(policy_file), "--json").json()
    admin("policy", "assign", "many", policy["policy_id"])

    client = DeviceClient(scale_out.nginx.url, ca_pem=scale_out.ca_pem)

    def enrol(n: int) -> CometStorageConfig:
        device = client.login("many", f"device-{n}", PASSWORD)
        bucket_id = client.share_bucket(device)
        key = client.bucket_key(device, bucket_id)
        return CometStorageConfig(scale_out.nginx.url, bucket_id, key, ca_pem=scale_out.ca_pem)

    with ThreadPoolExecutor(4) as pool:
        configs = list(pool.map(enrol, range(DEVICES)))
    client.close()
    start = threading.Barrier(DEVICES)

    def upload(config: CometStorageConfig) -> int:
        storage = CometStorage(config)
        stored = 0
        start.wait(timeout=30)
        try:
            for n in range(3):
                try:
                    storage.put(f"data/{n:02x}/piece", os.urandom(PIECE))
                    stored += 1
                except StorageError as e:
                    assert "quota exceeded" in str(e), e
            return stored
        finally:
            storage.close()

    with ThreadPoolExecutor(DEVICES) as pool:
        stored = sum(pool.map(upload, configs))
    assert stored == QUOTA_PIECES
    listed = admin("bucket", "list", "--user", "many", "--json").json()
    used = {b["bucket_id"]: b["used_bytes"] for b in listed}
    assert sum(used.values()) == QUOTA_PIECES * PIECE
    for config in configs:
        in_store = stored_bytes(moto_client, scale_out.store_bucket, config.bucket_id)
        assert used[config.bucket_id] == in_store
    served = {port for port, path in scale_out.nginx.served() if path == PUT_PATH}
    assert served == {str(s.port) for s in scale_out.servers}  # every instance took puts


def test_a_backup_survives_losing_an_instance_mid_upload_and_restores_through_another(
    scale_out: ScaleOut, moto_client: S3Client, scale_root: Path
) -> None:
    short_tmp = scale_root
    first, second, third = scale_out.servers
    nginx = scale_out.nginx
    scale_out.admin("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    root = short_tmp / "agent"
    root.mkdir()
    agent = AgentProcess(root)
    agent.start()
    try:
        agent.comet(
            "login", "--server", nginx.url, "--username", "alice", "--password-stdin",
            "--trust-fingerprint", nginx.fingerprint, stdin=PASSWORD + "\n",
        )  # fmt: skip
        agent.comet("vault", "add", "srv", "--type", "comet")
        [vault] = agent.comet("vault", "list", "--json").json()
        source = short_tmp / "src"
        (source / "sub").mkdir(parents=True)
        (source / "big.bin").write_bytes(os.urandom(24 * 1024 * 1024))
        (source / "sub" / "notes.txt").write_text("kept across instances\n" * 500)
        agent.comet("item", "add", "docs", "--type", "files", "--include", str(source))

        # The first instance stops answering: a call nginx hands it waits in its
        # receive queue. A small call is let through; once a pack is streaming into
        # it, it dies.
        with ThreadPoolExecutor(1) as pool:
            backup = pool.submit(
                agent.comet, "backup", "docs", "--vault", "srv", "--wait", "--json"
            )
            assert catch_a_pack_upload(first, lambda: backup.done())
            first.kill()
            killed_at = len(nginx.served(answered_only=True))
            job = backup.result(timeout=90).json()
        assert job["status"] == "success", job
        # The call cut off by the kill is logged when it ends, maybe after killed_at:
        # count the answered ones.
        after_kill = nginx.served(answered_only=True)[killed_at:]
        puts = {port for port, path in after_kill if path == PUT_PATH}
        assert puts and str(first.port) not in puts  # the rest went through the others

        # Nothing acknowledged is missing, and the usage count matches the store.
        listed = scale_out.admin("bucket", "list", "--user", "alice", "--json").json()
        [bucket] = [b for b in listed if b["bucket_id"] == vault["location"]]
        assert bucket["used_bytes"] == stored_bytes(
            moto_client, scale_out.store_bucket, vault["location"]
        )

        # Only the third instance is left to serve the restore.
        second.kill()
        restored_from = len(nginx.served())
        dest = short_tmp / "dest"
        restored = agent.comet(
            "restore", job["snapshot_id"], "--vault", "srv", "--to", str(dest), "--wait", "--json"
        ).json()
        assert restored["status"] == "success", restored
        gets = {port for port, path in nginx.served()[restored_from:] if path == GET_PATH}
        assert gets == {str(third.port)}
        out = dest / str(source).lstrip("/")
        for rel in ("big.bin", "sub/notes.txt"):
            assert (out / rel).read_bytes() == (source / rel).read_bytes(), rel
    finally:
        agent.kill()
