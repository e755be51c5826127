"""Incremental walks: unchanged directories reuse the parent's tree blob, xattrs are
re-read only when ctime moved, and holes of sparse files are not read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.backup import archiver as archiver_module
from comet.agent.repository import Repository
from comet.agent.repository.tree import Node, Tree
from comet.agent.restore import DirectoryTarget, run_restore

OPTIONS = BackupOptions("item-1", "device-1", hostname="host")


def _source(root: Path) -> Path:
    src = root / "src"
    for d in ("a/deep", "b", "c"):
        (src / d).mkdir(parents=True)
    for i in range(5):
        (src / "a" / f"f{i}.txt").write_text(f"file {i}\n" * 100)
        (src / "b" / f"g{i}.txt").write_text(f"other {i}\n" * 100)
    (src / "a" / "deep" / "x.txt").write_text("deep")
    (src / "link").symlink_to("a/f0.txt")
    return src


def _node(repo: Repository, snapshot_id: bytes, path: Path) -> Node:
    tree = repo.load_tree(repo.load_snapshot(snapshot_id).tree)
    node = None
    for name in path.parts[1:]:
        if node is not None:
            assert node.subtree is not None
            tree = repo.load_tree(node.subtree)
        (node,) = [n for n in tree.nodes if n.name == name]
    assert node is not None
    return node


class _Counter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.encoded = 0
        self.xattr_reads = 0
        encode = Tree.encode
        read_xattrs = archiver_module.read_xattrs

        def counting_encode(tree: Tree) -> bytes:
            self.encoded += 1
            return encode(tree)

        def counting_read(path: str) -> tuple[tuple[tuple[str, bytes], ...], str | None]:
            self.xattr_reads += 1
            return read_xattrs(path)

        monkeypatch.setattr(Tree, "encode", counting_encode)
        monkeypatch.setattr(archiver_module, "read_xattrs", counting_read)


def test_unchanged_directories_reuse_the_parent_tree_id(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _source(tmp_path)
    first = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    counter = _Counter(monkeypatch)
    # Only the include path's ancestors (/, /tmp, ...) are encoded: they are built
    # from the include list, not walked.
    ancestors = len(src.parts) - 1

    second = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    assert counter.encoded == ancestors
    assert counter.xattr_reads == 0
    assert second.files == first.files and second.dirs == first.dirs
    assert second.blobs == first.blobs and second.total_bytes == first.total_bytes
    assert _node(repo, second.snapshot_id, src) == _node(repo, first.snapshot_id, src)

    counter.encoded = 0
    (src / "a" / "deep" / "x.txt").write_text("changed")
    third = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    # src, src/a and src/a/deep change; src/b, src/c are reused as they were.
    assert counter.encoded == ancestors + 3
    assert counter.xattr_reads == 1  # the changed file only
    for same in ("b", "c", "link", "a/f1.txt"):
        assert _node(repo, third.snapshot_id, src / same) == _node(
            repo, first.snapshot_id, src / same
        )
    assert _node(repo, third.snapshot_id, src / "a").subtree != (
        _node(repo, first.snapshot_id, src / "a").subtree
    )


def test_added_removed_and_excluded_names_change_the_tree(tmp_path: Path, repo: Repository) -> None:
    src = _source(tmp_path)
    first = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    (src / "b" / "g0.txt").unlink()
    second = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    b1 = _node(repo, first.snapshot_id, src / "b").subtree
    b2 = _node(repo, second.snapshot_id, src / "b").subtree
    assert b1 != b2
    assert b2 is not None and [n.name for n in repo.load_tree(b2).nodes] == [
        f"g{i}.txt" for i in range(1, 5)
    ]
    excluded = run_backup(repo, FilesSource([str(src)], excludes=["*/g1.txt"]), OPTIONS)
    b3 = _node(repo, excluded.snapshot_id, src / "b").subtree
    assert b3 is not None and "g1.txt" not in [n.name for n in repo.load_tree(b3).nodes]


def _xattrs_supported(path: Path) -> bool:
    try:
        os.setxattr(path, "user.comet-probe", b"1")
        os.removexattr(path, "user.comet-probe")
        return True
    except OSError:
        return False


def test_xattrs_are_read_again_when_ctime_changes(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _source(tmp_path)
    target = src / "a" / "f2.txt"
    if not _xattrs_supported(target):
        pytest.skip("no user xattrs on this filesystem")
    os.setxattr(target, "user.note", b"one")
    first = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    assert _node(repo, first.snapshot_id, target).xattrs == (("user.note", b"one"),)

    counter = _Counter(monkeypatch)
    second = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    assert counter.xattr_reads == 0
    assert _node(repo, second.snapshot_id, target).xattrs == (("user.note", b"one"),)

    os.setxattr(target, "user.note", b"two")  # content and mtime stay, ctime moves
    os.setxattr(target, "user.more", b"\x00bin")
    third = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    assert counter.xattr_reads == 1
    assert _node(repo, third.snapshot_id, target).xattrs == (
        ("user.more", b"\x00bin"),
        ("user.note", b"two"),
    )
    os.removexattr(target, "user.more")
    fourth = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    assert _node(repo, fourth.snapshot_id, target).xattrs == (("user.note", b"two"),)


def test_holes_of_sparse_files_are_not_read_and_restore_as_holes(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    sparse = src / "disk.img"
    data = os.urandom(1 << 20)
    with open(sparse, "wb") as f:
        f.truncate(64 << 20)
        f.seek(20 << 20)
        f.write(data)
        f.seek(50 << 20)
        f.write(data)
    if sparse.stat().st_blocks * 512 >= 8 << 20:
        pytest.skip("this filesystem does not keep holes")
    read = 0
    preadv = os.preadv

    def counting_preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        nonlocal read
        n = preadv(fd, buffers, offset)
        read += n
        return n

    monkeypatch.setattr(os, "preadv", counting_preadv)
    result = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    assert result.total_bytes == 64 << 20 and not result.warnings
    assert read < 4 << 20  # the two data extents (block-rounded), none of the holes
    assert result.uploaded_bytes < 4 << 20  # zero chunks deduplicate to a few blobs

    dest = tmp_path / "dest"
    run_restore(repo, result.snapshot_id, DirectoryTarget(dest))
    out = dest / str(sparse).lstrip("/")
    assert out.read_bytes() == sparse.read_bytes()
    assert out.stat().st_blocks * 512 < 8 << 20


def test_sparse_file_with_a_trailing_hole_and_an_empty_one(
    tmp_path: Path, repo: Repository
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "tail.img", "wb") as f:
        f.write(b"head" * 1000)
        f.truncate(9 << 20)
    with open(src / "hole.img", "wb") as f:
        f.truncate(5 << 20)
    result = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    assert not result.warnings
    dest = tmp_path / "dest"
    run_restore(repo, result.snapshot_id, DirectoryTarget(dest))
    out = dest / str(src).lstrip("/")
    for name in ("tail.img", "hole.img"):
        assert (out / name).read_bytes() == (src / name).read_bytes()
