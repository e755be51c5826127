"""A mount reads through every kind of vault storage: S3, SFTP and a Comet Server
bucket (local storage is covered by the other mount tests)."""

from __future__ import annotations

import filecmp
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.mount import MountOptions
from comet.agent.mount.served_mount import ServedMount
from comet.agent.repository import Repository
from comet.agent.storage.base import Storage
from comet.agent.storage.comet import CometStorage
from comet.agent.storage.s3 import S3Storage
from comet.agent.storage.sftp import SftpStorage
from tests.agent.mount.conftest import VAULT_KEY, fusermount_u


def make_storage(request: pytest.FixtureRequest, kind: str) -> Storage:
    if kind == "s3":
        return S3Storage(request.getfixturevalue("s3_bucket"))
    if kind == "sftp":
        return SftpStorage(request.getfixturevalue("sftp_config"))
    return CometStorage(request.getfixturevalue("comet_bucket"))


@pytest.fixture(params=["s3", "sftp", "comet"])
def remote_storage(request: pytest.FixtureRequest) -> Iterator[tuple[Storage, Storage]]:
    """Two storage objects on one fresh vault: one to back up with, one to mount."""
    first = make_storage(request, request.param)
    second = make_storage(request, request.param)
    yield first, second
    first.close()


def test_mount_reads_every_vault_type(
    remote_storage: tuple[Storage, Storage], tmp_path: Path
) -> None:
    writer_storage, mount_storage = remote_storage
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    for i in range(10):
        (src / "d" / f"f{i}.txt").write_text(f"{i}\n" * (100 * i + 1))
    repo = Repository.init(writer_storage, VAULT_KEY)
    run_backup(repo, FilesSource([str(src)]), BackupOptions("item", "device"))
    mnt = Path(tempfile.mkdtemp(prefix="comet-mnt-"))
    served = ServedMount(
        Repository.open(mount_storage, VAULT_KEY),
        MountOptions(mountpoint=str(mnt), cache_bytes=1 << 20),  # smaller than the file
        lambda: {"item": "docs"},
    )
    try:
        item = mnt / "by-item" / "docs"
        root = item / os.readlink(item / "latest") / str(src).lstrip("/")
        names = ["big.bin"] + [f"d/f{i}.txt" for i in range(10)]
        results: dict[str, bool] = {}

        def check(name: str) -> None:
            results[name] = filecmp.cmp(src / name, root / name, shallow=False)

        threads = [threading.Thread(target=check, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == dict.fromkeys(names, True)
        assert served.cache.cached_bytes <= (1 << 20) + (8 << 20)  # one blob over at most
    finally:
        served.stop()
        if not served.wait(10):
            fusermount_u(mnt)
        mnt.rmdir()
