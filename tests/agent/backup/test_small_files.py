"""Backup of files that fit in one chunk: read without the chunker, sealed in batches."""

from __future__ import annotations

import os
from pathlib import Path

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.repository import Repository
from comet.agent.repository.format import BlobType
from comet.agent.repository.tree import Node, Tree
from comet.agent.restore import DirectoryTarget, run_restore

OPTIONS = BackupOptions("item-1", "device-1", hostname="host")


def _nodes(repo: Repository, root: Tree, path: Path) -> dict[str, Node]:
    tree = root
    for name in path.parts[1:]:
        (node,) = [n for n in tree.nodes if n.name == name]
        assert node.subtree is not None
        tree = repo.load_tree(node.subtree)
    return {n.name: n for n in tree.nodes}


def _chunk_ids(repo: Repository, data: bytes) -> tuple[bytes, ...]:
    view = memoryview(data)
    pos = 0

    def read_into(buf: memoryview) -> int:
        nonlocal pos
        n = min(len(buf), len(view) - pos)
        buf[:n] = view[pos : pos + n]
        pos += n
        return n

    chunks = repo.new_chunker().chunks(read_into)
    return tuple(repo.sealer.blob_id(BlobType.DATA, c) for c in chunks)


def test_small_files_match_the_chunker_around_the_minimum_size(
    tmp_path: Path, repo: Repository
) -> None:
    limit = repo.chunker_params["min_size"]
    src = tmp_path / "src"
    src.mkdir()
    sizes = {"empty": 0, "one": 1, "below": limit - 1, "at": limit, "above": limit + 1}
    contents = {name: os.urandom(size) for name, size in sizes.items()}
    for name, data in contents.items():
        (src / name).write_bytes(data)
    result = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    assert not result.warnings and result.bytes_read == sum(sizes.values())
    root = repo.load_tree(repo.load_snapshot(result.snapshot_id).tree)
    nodes = _nodes(repo, root, src)
    for name, data in contents.items():
        assert nodes[name].size == len(data)
        assert nodes[name].content == _chunk_ids(repo, data), name


def test_many_small_files_round_trip(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "src"
    src.mkdir()
    contents = {f"f{i:03}": os.urandom(i * 37) + b"x" * i for i in range(300)}
    contents["dup"] = contents["f100"]
    for name, data in contents.items():
        (src / name).write_bytes(data)
    result = run_backup(repo, FilesSource([str(src)]), OPTIONS)
    assert not result.warnings and result.files == len(contents)
    out = tmp_path / "out"
    restored = run_restore(repo, result.snapshot_id, DirectoryTarget(out))
    assert not restored.warnings
    for name, data in contents.items():
        assert (out / src.relative_to("/") / name).read_bytes() == data
