"""Browsing and searching snapshots: list_dir per path component, lazy find."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.browse import FindQuery, find, list_dir
from comet.agent.errors import BrowseError, BrowsePathError
from comet.agent.repository import Repository
from comet.agent.repository.format import BlobType
from comet.agent.repository.tree import NodeType
from comet.agent.storage.memory import MemoryStorage

OPTIONS = BackupOptions("item", "device")
T0 = 1_600_000_000_000_000_000


@pytest.fixture
def repo() -> Repository:
    return Repository.init(MemoryStorage(), b"b" * 32)


@pytest.fixture
def snapshots(tmp_path: Path, repo: Repository) -> tuple[Path, list[bytes]]:
    """Three snapshots of a small tree that changes between them."""
    src = tmp_path / "src"
    (src / "docs" / "2024").mkdir(parents=True)
    (src / "empty").mkdir()
    (src / "docs" / "report.pdf").write_bytes(b"%PDF" + b"x" * 5000)
    (src / "docs" / "2024" / "notes.txt").write_text("notes")
    os.symlink("docs/report.pdf", src / "latest")
    os.utime(src / "docs" / "report.pdf", ns=(T0, T0))
    ids = [run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id]
    (src / "docs" / "2024" / "big.log").write_bytes(b"l" * 100_000)
    os.utime(src / "docs" / "2024" / "big.log", ns=(T0 + 10**9, T0 + 10**9))
    ids.append(run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id)
    (src / "docs" / "report.pdf").unlink()
    ids.append(run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id)
    return src, ids


def test_list_dir_nested(repo: Repository, snapshots: tuple[Path, list[bytes]]) -> None:
    src, ids = snapshots
    top = list_dir(repo, ids[0], str(src))
    assert [(e.path, e.type) for e in top] == [
        (str(src / "docs"), NodeType.DIR),
        (str(src / "empty"), NodeType.DIR),
        (str(src / "latest"), NodeType.SYMLINK),
    ]
    assert top[2].link_target == "docs/report.pdf"
    assert top[0].snapshot_id == ids[0].hex()
    docs = list_dir(repo, ids[0], str(src / "docs") + "/")
    report = next(e for e in docs if e.path.endswith("report.pdf"))
    assert (report.size, report.mtime_ns, report.type) == (5004, T0, NodeType.FILE)
    assert list_dir(repo, ids[1].hex(), str(src / "docs" / "2024"))[0].path.endswith("big.log")
    assert list_dir(repo, ids[0], str(src / "empty")) == []
    root = list_dir(repo, ids[0], "/")
    assert [e.path for e in root] == ["/" + str(src).strip("/").split("/")[0]]


def test_list_dir_errors(repo: Repository, snapshots: tuple[Path, list[bytes]]) -> None:
    src, ids = snapshots
    with pytest.raises(BrowsePathError, match="not in the snapshot"):
        list_dir(repo, ids[0], str(src / "nope"))
    with pytest.raises(BrowsePathError, match="not a directory"):
        list_dir(repo, ids[0], str(src / "latest" / "x"))
    with pytest.raises(BrowsePathError):
        list_dir(repo, ids[0], str(src) + "/../etc")


def test_find_by_glob_regex_size_and_time(
    repo: Repository, snapshots: tuple[Path, list[bytes]]
) -> None:
    _, ids = snapshots
    by_glob = list(find(repo, ids, FindQuery(name_glob="*.pdf")))
    assert [e.snapshot_id for e in by_glob] == [ids[0].hex(), ids[1].hex()]
    by_regex = list(find(repo, ids, FindQuery(name_regex=r"^(notes|big)\.")))
    assert sorted(e.path.rsplit("/", 1)[-1] for e in by_regex) == [
        "big.log",
        "big.log",
        "notes.txt",
        "notes.txt",
        "notes.txt",
    ]
    large = list(find(repo, ids, FindQuery(min_size=10_000)))
    assert {e.path.rsplit("/", 1)[-1] for e in large} == {"big.log"} and len(large) == 2
    small = list(find(repo, ids[:1], FindQuery(max_size=10)))
    assert [e.path.rsplit("/", 1)[-1] for e in small] == ["notes.txt"]
    window = FindQuery(modified_after=T0 - 1, modified_before=T0 + 2 * 10**9, name_glob="*.*")
    in_window = list(find(repo, ids, window))
    assert sorted(e.path.rsplit("/", 1)[-1] for e in in_window) == [
        "big.log",
        "big.log",
        "report.pdf",
        "report.pdf",
    ]
    assert len(list(find(repo, ids, FindQuery(name_glob="*", limit=3)))) == 3
    with pytest.raises(BrowseError, match="invalid name pattern"):
        list(find(repo, ids, FindQuery(name_regex="(")))


def test_find_loads_trees_lazily(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "many"
    for i in range(300):
        (src / f"dir{i:03}" / "sub").mkdir(parents=True)
        (src / f"dir{i:03}" / "sub" / "f.txt").write_text(str(i))
    snapshot_id = run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id
    loads: list[bytes] = []
    real = repo.load_tree

    def counting(tree_id: bytes, **kwargs: bool) -> object:
        loads.append(tree_id)
        return real(tree_id, **kwargs)

    monkeypatch.setattr(repo, "load_tree", counting)
    hits = find(repo, [snapshot_id], FindQuery(name_glob="f.txt", limit=1))
    assert loads == []  # a generator: nothing is read before the first next()
    first = next(hits)
    assert first.path == str(src / "dir000" / "sub" / "f.txt")
    depth = len(src.parts) + 2  # root, each path component, dir000, sub
    assert len(loads) <= depth
    assert list(hits) == []
    assert len(loads) <= depth
    loads.clear()
    list_dir(repo, snapshot_id, str(src / "dir123" / "sub"))
    assert len(loads) == len(src.parts) + 2


def test_a_walk_does_not_fill_the_tree_cache(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing reads each tree once: caching them would only hold ~200 B a file (the
    cache's 256 trees of many small files) for nothing."""
    src = tmp_path / "many"
    for i in range(40):
        (src / f"dir{i:02}").mkdir(parents=True)
        (src / f"dir{i:02}" / "f.txt").write_text(str(i))
    snapshot_id = run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id
    reads: list[bytes] = []
    real = repo.read_blob

    def counting(blob_type: BlobType, blob_id: bytes) -> bytes:
        if blob_type == BlobType.TREE:
            reads.append(blob_id)
        return real(blob_type, blob_id)

    monkeypatch.setattr(repo, "read_blob", counting)
    entries = list(find(repo, [snapshot_id], FindQuery(), under=src.parts[1:]))
    assert len(entries) == 80
    assert len(reads) == 40 + len(src.parts)  # each tree once (root, path, 40 dirs)
    reads.clear()
    assert list(find(repo, [snapshot_id], FindQuery(), under=src.parts[1:])) == entries
    # The 40 dirs and src itself again (a walk reads the trees it walks as they are
    # stored, never from the cache); the path down to src: cached.
    assert len(reads) == 41
