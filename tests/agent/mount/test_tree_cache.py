"""Directory trees reach a mount a window at a time, and a damaged tree fails only its
own directory."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from comet.agent.mount.tree_cache import TreeCache
from comet.agent.repository.pack import pack_key
from comet.agent.repository.tree import NodeType
from tests.agent.mount.conftest import open_repo
from tests.agent.mount.test_damage_and_changes import mount


def test_one_window_read_brings_every_tree_below(backed_up: tuple[Path, Path]) -> None:
    _src, vault = backed_up
    repo = open_repo(vault)
    trees = TreeCache(repo)
    try:
        root = repo.list_snapshots()[-1].tree
        assert trees.load(root) == [n.to_json() for n in repo.load_tree(root).nodes]
        assert trees.window_reads == 1
        # Every directory below is now held: listed without reading storage.
        pending, seen = [root], 0
        while pending:
            tree_id = pending.pop()
            listing = trees.cached(tree_id)
            assert listing == [n.to_json() for n in repo.load_tree(tree_id).nodes]
            seen += 1
            pending += [
                bytes.fromhex(n["subtree"]) for n in listing if n["type"] == NodeType.DIR.value
            ]
        assert seen >= 5
        assert trees.window_reads == 1
    finally:
        trees.close()
        repo.close()


def test_a_damaged_tree_fails_only_its_directory(
    backed_up: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src, vault = backed_up
    repo = open_repo(vault)
    tree = repo.load_tree(repo.list_snapshots()[-1].tree)
    for name in str(src / "docs" / "deep" / "er").strip("/").split("/"):
        node = next(n for n in tree.nodes if n.name == name)
        assert node.subtree is not None
        subtree, tree = node.subtree, repo.load_tree(node.subtree)
    loc = repo.locate(subtree)
    with open(vault / pack_key(loc.pack_id), "r+b") as f:  # flip a byte of that tree blob
        f.seek(loc.offset + loc.length // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    repo.close()
    caplog.set_level(logging.WARNING, "comet.agent.mount")
    with mount(vault, tmp_path / "mnt") as mnt:
        item = mnt / "by-item" / "docs"
        root = item / os.readlink(item / "latest") / str(src).lstrip("/")
        with pytest.raises(OSError) as e:
            os.listdir(root / "docs" / "deep" / "er")
        assert e.value.errno == errno.EIO
        assert len(os.listdir(root / "docs" / "deep")) == 41  # 40 files and 'er'
        assert (root / "docs" / "deep" / "small-07.txt").read_bytes() == (
            src / "docs" / "deep" / "small-07.txt"
        ).read_bytes()
        assert sorted(os.listdir(root)) == sorted(os.listdir(src))
    assert any("damaged" in r.getMessage() for r in caplog.records)
