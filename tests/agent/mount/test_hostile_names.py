"""A crafted snapshot with names no real filesystem has (``..``, ``a/b``, empty, NUL,
the same name twice): the mount lists and serves every safe entry, hides the others
with a warning in the agent log, and never hands the kernel a name it would reject
(which fails the whole directory)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from comet.agent.mount import MountOptions
from comet.agent.mount.served_mount import ServedMount
from comet.agent.repository import Repository
from comet.agent.repository.format import BlobType
from comet.agent.repository.tree import Node, NodeType, Tree
from comet.agent.storage.local import LocalStorage
from tests.agent.crafted import commit_tree
from tests.agent.mount.conftest import ITEM, VAULT_KEY, fusermount_u, open_repo

BAD_NAMES = ["..", ".", "", "a/b", "../../etc/passwd", "nul\0x"]


def _file(repo: Repository, name: str, data: bytes) -> Node:
    blob = repo.sealer.blob_id(BlobType.DATA, data)
    return Node(name=name, type=NodeType.FILE, mode=0o644, size=len(data), content=(blob,))


@pytest.fixture
def hostile_vault(tmp_path: Path) -> Path:
    vault = tmp_path / "vault"
    repo = Repository.init(LocalStorage(vault), VAULT_KEY)
    inner = Tree((_file(repo, "..", b"evil"), _file(repo, "ok.txt", b"fine\n")))
    inner_id = repo.sealer.blob_id(BlobType.TREE, inner.encode())
    root = Tree(
        (
            *[_file(repo, name, b"evil") for name in BAD_NAMES],
            _file(repo, "twice", b"first\n"),
            _file(repo, "twice", b"second\n"),
            _file(repo, "good.txt", b"good\n"),
            Node(name="d", type=NodeType.DIR, mode=0o755, subtree=inner_id),
        )
    )
    blobs = [b"evil", b"fine\n", b"first\n", b"second\n", b"good\n"]
    commit_tree(repo, root, [inner], blobs, item_id=ITEM, device_id="device-1")
    repo.close()
    return vault


@pytest.fixture
def hostile_mount(hostile_vault: Path) -> Iterator[Path]:
    mnt = Path(tempfile.mkdtemp(prefix="comet-mnt-"))
    served = ServedMount(
        open_repo(hostile_vault), MountOptions(mountpoint=str(mnt)), lambda: {ITEM: "docs"}
    )
    try:
        yield mnt / "by-item" / "docs" / "latest"
    finally:
        served.stop()
        if not served.wait(10):
            fusermount_u(mnt)
        mnt.rmdir()


def test_unsafe_names_are_hidden_and_the_rest_reads(
    hostile_mount: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    root = hostile_mount
    assert sorted(os.listdir(root)) == ["d", "good.txt", "twice"]
    assert (root / "good.txt").read_bytes() == b"good\n"
    assert (root / "twice").read_bytes() == b"first\n"  # the first of a repeated name
    assert os.listdir(root / "d") == ["ok.txt"]
    assert (root / "d" / "ok.txt").read_bytes() == b"fine\n"
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert found == ["d", "d/ok.txt", "good.txt", "twice"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "unsafe name" in warned and "repeated name" in warned
