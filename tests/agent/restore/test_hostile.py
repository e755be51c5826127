"""Hostile snapshots, crafted through the engine API: nothing lands outside dest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from comet.agent.repository import Repository
from comet.agent.repository.format import BlobType
from comet.agent.repository.tree import Node, NodeType, Tree
from comet.agent.restore import DirectoryTarget, run_restore
from comet.agent.restore import directory as directory_module
from tests.agent.crafted import commit_tree

# Every test here also runs with the file-writing process making the files.
pytestmark = pytest.mark.usefixtures("both_writers")


def _commit(repo: Repository, root: Tree, subtrees: list[Tree], blobs: list[bytes]) -> bytes:
    return commit_tree(repo, root, subtrees, blobs)


def _tree_id(repo: Repository, tree: Tree) -> bytes:
    return repo.sealer.blob_id(BlobType.TREE, tree.encode())


def _file(repo: Repository, name: str, data: bytes, **kw: object) -> Node:
    blob = repo.sealer.blob_id(BlobType.DATA, data)
    return Node(name=name, type=NodeType.FILE, mode=0o644, size=len(data), content=(blob,), **kw)  # type: ignore[arg-type]


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """``dest`` to restore into, next to ``outside`` which must stay untouched."""
    dest = tmp_path / "box" / "dest"
    outside = tmp_path / "box" / "outside"
    dest.mkdir(parents=True)
    outside.mkdir()
    (outside / "victim").write_text("original")
    return dest, outside


def _outside_untouched(dest: Path, outside: Path) -> None:
    assert sorted(p.name for p in dest.parent.iterdir()) == ["dest", "outside"]
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (outside / "victim").read_text() == "original"
    for p in dest.rglob("*"):
        assert os.path.realpath(p.parent).startswith(str(dest)), p


def test_bad_names_are_refused(repo: Repository, sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    payload = b"pwned"
    names = ["..", ".", "", "a/../../outside/victim", "/" + str(outside / "victim"), "nul\0x"]
    inner = Tree((_file(repo, "..", payload), _file(repo, "ok.txt", b"fine")))
    root = Tree(
        (
            *[_file(repo, n, payload) for n in names],
            Node(name="d", type=NodeType.DIR, mode=0o755, subtree=_tree_id(repo, inner)),
        )
    )
    snapshot_id = _commit(repo, root, [inner], [payload, b"fine"])
    result = run_restore(repo, snapshot_id, DirectoryTarget(dest, overwrite="overwrite"))  # type: ignore[arg-type]
    assert len([w for w in result.warnings if "unsafe name" in w.message]) == len(names) + 1
    assert (dest / "d" / "ok.txt").read_bytes() == b"fine"
    _outside_untouched(dest, outside)


def test_symlink_then_entry_inside_it(repo: Repository, sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    inner = Tree((_file(repo, "victim", b"pwned"),))
    link = Node(name="escape", type=NodeType.SYMLINK, target=str(outside))
    same_name_dir = Node(
        name="escape", type=NodeType.DIR, mode=0o755, subtree=_tree_id(repo, inner)
    )
    # a symlink and a directory of the same name: the second entry is refused
    root = Tree((link, same_name_dir))
    snapshot_id = _commit(repo, root, [inner], [b"pwned"])
    result = run_restore(repo, snapshot_id, DirectoryTarget(dest, overwrite="overwrite"))  # type: ignore[arg-type]
    assert any("duplicate" in w.message for w in result.warnings)
    assert os.readlink(dest / "escape") == str(outside)
    _outside_untouched(dest, outside)


def test_existing_symlink_in_dest_is_not_followed(
    repo: Repository, sandbox: tuple[Path, Path]
) -> None:
    dest, outside = sandbox
    os.symlink(outside, dest / "escape")
    inner = Tree((_file(repo, "victim", b"pwned"),))
    root = Tree(
        (Node(name="escape", type=NodeType.DIR, mode=0o755, subtree=_tree_id(repo, inner)),)
    )
    snapshot_id = _commit(repo, root, [inner], [b"pwned"])
    result = run_restore(repo, snapshot_id, DirectoryTarget(dest))
    assert any("not a directory" in w.message for w in result.warnings)
    assert (outside / "victim").read_text() == "original"


def test_hardlink_pointing_outside(repo: Repository, sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    evil = _file(repo, "link", b"own copy", link=("..", "outside", "victim"))
    evil2 = _file(repo, "link2", b"own copy", link=("nonexistent",))
    snapshot_id = _commit(repo, Tree((evil, evil2)), [], [b"own copy"])
    run_restore(repo, snapshot_id, DirectoryTarget(dest))
    # restored from its own content, never linked to a path outside the restore
    assert (dest / "link").read_bytes() == b"own copy"
    assert os.stat(dest / "link").st_nlink == 1
    _outside_untouched(dest, outside)


def test_device_nodes_need_root(
    repo: Repository, sandbox: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, outside = sandbox
    monkeypatch.setattr(directory_module.os, "geteuid", lambda: 1000)
    dev = Node(name="null", type=NodeType.CHARDEV, mode=0o666, rdev_major=1, rdev_minor=3)
    snapshot_id = _commit(repo, Tree((dev,)), [], [])
    result = run_restore(repo, snapshot_id, DirectoryTarget(dest))
    assert any("only be restored as root" in w.message for w in result.warnings)
    assert not (dest / "null").exists()
    _outside_untouched(dest, outside)
