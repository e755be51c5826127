"""Fixtures for mount tests: a backed-up tree on local storage, mounted for real."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.mount import MountOptions
from comet.agent.mount.served_mount import ServedMount
from comet.agent.repository import Repository
from comet.agent.storage.local import LocalStorage

VAULT_KEY = b"m" * 32
ITEM, DEVICE = "item-1", "device-1"
T0 = 1_600_000_000_123_456_789


def make_tree(src: Path) -> None:
    """Nested dirs, unicode names, empty file and dir, symlinks (one dangling), a hard
    link, a sparse file, a fifo, odd owners and modes, a multi-chunk random file."""
    (src / "docs" / "deep" / "er").mkdir(parents=True)
    (src / "empty-dir").mkdir()
    (src / "docs" / "ünïcødé 名前.txt").write_text("grüße\n")
    (src / "docs" / "empty.txt").write_bytes(b"")
    (src / "docs" / "deep" / "er" / "leaf.txt").write_text("leaf\n" * 1000)
    # Over 8 MiB: at least 3 chunks whatever the content (chunks are at most 4 MiB).
    (src / "random.bin").write_bytes(os.urandom(9 * 1024 * 1024 + 123))
    (src / "text.sql").write_text("INSERT INTO t VALUES (1, 'x');\n" * 50_000)
    os.link(src / "text.sql", src / "docs" / "hardlink.sql")
    os.symlink("../random.bin", src / "docs" / "link-to-random")
    os.symlink("/nonexistent/target", src / "dangling")
    with open(src / "sparse.img", "wb") as f:
        f.truncate(8 * 1024 * 1024)
        f.seek(3 * 1024 * 1024)
        f.write(b"data in the middle")
    os.mkfifo(src / "a-fifo")
    secret = src / "docs" / "secret.txt"
    secret.write_text("only for uid 1234\n")
    os.chown(secret, 1234, 1234)
    os.chmod(secret, 0o600)
    os.chmod(src / "text.sql", 0o640)
    for i in range(40):
        (src / "docs" / "deep" / f"small-{i:02}.txt").write_text(f"file {i}\n" * (i + 1))
    os.utime(src / "docs" / "empty.txt", ns=(T0, T0))


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can reach (pytest's temp dirs are 0700 root's), so that
    permission checks through the mount see the source's own modes only."""
    path = Path(tempfile.mkdtemp(prefix="comet-mount-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def backed_up(open_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(source tree, vault directory) with one snapshot of the tree."""
    src, vault = open_dir / "src", tmp_path / "vault"
    src.mkdir()
    make_tree(src)
    repo = Repository.init(LocalStorage(vault), VAULT_KEY)
    run_backup(repo, FilesSource([str(src)]), BackupOptions(ITEM, DEVICE, hostname="host-a"))
    repo.close()
    return src, vault


def open_repo(vault: Path) -> Repository:
    return Repository.open(LocalStorage(vault), VAULT_KEY)


def fusermount_u(path: Path) -> None:
    subprocess.run(["fusermount3", "-u", "-z", str(path)], capture_output=True, check=False)


@pytest.fixture
def mounted(backed_up: tuple[Path, Path], tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(source tree, mount point) with the vault mounted."""
    src, vault = backed_up
    # Outside pytest's 0700 temp dirs, so other users can reach it (permission tests).
    mnt = Path(tempfile.mkdtemp(prefix="comet-mnt-"))
    mnt.chmod(0o755)
    served = ServedMount(
        open_repo(vault), MountOptions(mountpoint=str(mnt)), lambda: {ITEM: "docs"}
    )
    try:
        yield src, mnt
    finally:
        served.stop()
        if not served.wait(10):
            fusermount_u(mnt)
        mnt.rmdir()
