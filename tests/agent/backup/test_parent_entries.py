"""A re-run compares with the previous snapshot's entries as parsed tree documents and
builds a ``Node`` only for what changed: what it writes must be exactly what decoding
every entry wrote, and a damaged entry is reported and saved as new, never reused."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.backup.parent import to_node
from comet.agent.repository import Repository, json_doc
from comet.agent.repository.format import BlobType
from comet.agent.repository.snapshot import Snapshot
from comet.agent.repository.tree import Node, Tree, node_docs
from comet.agent.restore import DirectoryTarget, run_restore
from tests.agent.backup.conftest import CountingReporter
from tests.agent.repository.test_tree_decode import nodes

OPTIONS = BackupOptions("item-1", "device-1", hostname="host")


@settings(max_examples=60, deadline=None)
@given(st.lists(nodes, max_size=6, unique_by=lambda n: n.name), st.data())
def test_reused_entries_encode_to_the_bytes_they_were_read_from(
    made: list[Node], data: st.DataObject
) -> None:
    """A changed directory is encoded from its new nodes and the parsed documents of
    the entries it reuses: the reused ones must come out byte for byte as they were
    stored (tree ids depend on it), mixed with built nodes in any proportion."""
    stored = Tree(tuple(made)).encode()
    docs = node_docs(stored, "tree t")
    built = data.draw(st.lists(st.booleans(), min_size=len(docs), max_size=len(docs)))
    mixed = [Node.from_json(d) if b else d for d, b in zip(docs, built, strict=True)]
    assert Tree(tuple(map(to_node, mixed))).encode() == stored
    assert Tree(tuple(map(to_node, mixed))) == Tree.decode(stored, "tree t")


def _source(root: Path) -> Path:
    src = root / "src"
    for d in ("a/deep", "b"):
        (src / d).mkdir(parents=True)
    for i in range(4):
        (src / "a" / f"f{i}.txt").write_text(f"file {i}\n" * 50)
        (src / "b" / f"g{i}.txt").write_text(f"other {i}\n" * 50)
    (src / "a" / "deep" / "x.txt").write_text("deep")
    (src / "link").symlink_to("a/f0.txt")
    return src


def _count_from_json(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    built: list[str] = []
    from_json = Node.from_json

    def counting(obj: Any) -> Node:
        built.append(obj["name"])
        return from_json(obj)

    monkeypatch.setattr(Node, "from_json", staticmethod(counting))
    return built


def test_an_unchanged_rerun_builds_no_node_of_the_previous_snapshot(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _source(tmp_path)
    first = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    built = _count_from_json(monkeypatch)
    second = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    # Only the include path's ancestors, which the walk takes from the include list.
    assert set(built) <= set(src.parts[1:])
    assert _entry(repo, second.snapshot_id, src) == _entry(repo, first.snapshot_id, src)

    built.clear()
    (src / "a" / "deep" / "x.txt").write_text("changed")
    third = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    # The changed file, and the entries of the directories encoded again around it.
    reencoded = {"a", "b", "link", "deep", "x.txt", *(f"f{i}.txt" for i in range(4))}
    assert set(built) - set(src.parts[1:]) == reencoded
    b1 = _entry(repo, first.snapshot_id, src / "b")
    assert _entry(repo, third.snapshot_id, src / "b") == b1  # its tree id reused


def _entry(repo: Repository, snapshot_id: bytes, path: Path) -> dict[str, Any]:
    tree_id = repo.load_snapshot(snapshot_id).tree
    doc: dict[str, Any] = {}
    for name in path.parts[1:]:
        if doc:
            tree_id = bytes.fromhex(doc["subtree"])
        docs = node_docs(repo.read_blob(BlobType.TREE, tree_id), "t")
        (doc,) = [d for d in docs if d["name"] == name]
    return doc


def _commit_changed(
    repo: Repository, snapshot_id: bytes, path: Path, change: Callable[[dict[str, Any]], None]
) -> None:
    """Commit a newer snapshot equal to ``snapshot_id`` but for ``change`` made to the
    entry of ``path``: the trees from the root down to it are written again."""
    chain: list[tuple[bytes, list[dict[str, Any]]]] = []
    tree_id = repo.load_snapshot(snapshot_id).tree
    for name in path.parts[1:]:
        docs = node_docs(repo.read_blob(BlobType.TREE, tree_id), "t")
        chain.append((tree_id, docs))
        (doc,) = [d for d in docs if d["name"] == name]
        if name != path.name:
            tree_id = bytes.fromhex(doc["subtree"])
    change(doc)
    with repo.blob_writer() as writer:
        child: bytes | None = None
        for name, (_, docs) in zip(reversed(path.parts[1:]), reversed(chain), strict=True):
            if child is not None:
                (doc,) = [d for d in docs if d["name"] == name]
                doc["subtree"] = child.hex()
            data = json_doc.canonical({"v": 1, "nodes": docs})
            child = repo.sealer.blob_id(BlobType.TREE, data)
            writer.add(BlobType.TREE, child, data)
        writer.flush()
    assert child is not None
    now = time.time_ns()
    repo.save_snapshot(Snapshot("item-1", "device-1", "host", child, now, now + 10**12))


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda d: d.update(content=["not hex"]), "content"),
        (lambda d: d.update(xattrs={"user.a": "not base64!"}), "xattrs"),
        (lambda d: d.update(subtree="zz"), "subtree"),
    ],
)
def test_a_damaged_entry_is_reported_and_saved_as_new(
    tmp_path: Path,
    repo: Repository,
    damage: Callable[[dict[str, Any]], None],
    field: str,
) -> None:
    """Decoding the previous tree refused a damaged node (the whole directory was
    rescanned); now the damaged entry is read again and the others are still compared:
    nothing malformed is reused, and the snapshot restores as the source."""
    src = _source(tmp_path)
    target = src / "a" / "f2.txt"
    first = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    _commit_changed(repo, first.snapshot_id, target, damage)

    reporter = CountingReporter()
    result = run_backup(repo, FilesSource([str(src)]), OPTIONS, reporter=reporter)
    assert [w.path for w in result.warnings] == [str(target)]
    assert "previous snapshot's entry is unreadable, saving it as new" in result.warnings[0].message
    assert "malformed node" in result.warnings[0].message
    assert reporter.started == [str(target)]  # read again; its neighbours are not
    assert _entry(repo, result.snapshot_id, target) == _entry(repo, first.snapshot_id, target)
    # The tree written again for src/a is the one the first backup wrote.
    assert _entry(repo, result.snapshot_id, src) == _entry(repo, first.snapshot_id, src)

    out = tmp_path / "out"
    run_restore(repo, result.snapshot_id, DirectoryTarget(out))
    restored = out / str(target).lstrip("/")
    assert restored.read_text() == target.read_text()
