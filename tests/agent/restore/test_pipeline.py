"""The directory restore pipeline: blobs opened on a worker thread, files finished as
soon as their last piece is written, a bounded number of open files."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.repository import Repository
from comet.agent.repository.format import BlobType
from comet.agent.repository.index import BlobLocation
from comet.agent.repository.pack import pack_key
from comet.agent.restore import DirectoryTarget, run_restore
from comet.agent.restore import directory as directory_module
from comet.agent.restore import prefetch as prefetch_module
from tests.agent.restore.compare import compare_trees

OPTIONS = BackupOptions("item", "device")


def _many_files(root: Path) -> Path:
    rng = random.Random(7)
    src = root / "src"
    for d in range(12):
        sub = src / f"dir{d}" / "inner"
        sub.mkdir(parents=True)
        for i in range(40):
            size = rng.choice([0, 1, 100, 4096, 5000, 70_000])
            body = rng.randbytes(size) if i % 3 else (f"{d}/{i} " * size).encode()[:size]
            target = sub if i % 2 else sub.parent
            (target / f"f{i:03}").write_bytes(body)
    (src / "dup-a").write_bytes(b"same content\n" * 50)
    (src / "dup-b").write_bytes(b"same content\n" * 50)
    (src / "multi.bin").write_bytes(os.urandom(6 << 20))
    with open(src / "zeros-inside.bin", "wb") as f:
        f.write(os.urandom(10_000) + bytes(300_000) + os.urandom(10_000))
    return src


@pytest.mark.parametrize("max_open", [2, 256])
def test_many_small_files_restore_byte_for_byte(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch, max_open: int
) -> None:
    monkeypatch.setattr(directory_module, "_MAX_OPEN", max_open)
    monkeypatch.setattr(prefetch_module, "_BUDGET", 64 << 10)  # the worker often waits
    monkeypatch.setattr(prefetch_module, "_BATCH_BLOBS", 7)
    src = _many_files(tmp_path)
    snapshot_id = run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id
    dest = tmp_path / "dest"
    result = run_restore(repo, snapshot_id, DirectoryTarget(dest))
    assert not result.warnings and result.files == 12 * 40 + 4
    out = dest / str(src).lstrip("/")
    compare_trees(src, out)
    assert not [p for p in dest.rglob("*") if ".comet-" in p.name]


def test_damaged_blobs_among_many_small_files_with_allow_partial(
    tmp_path: Path, repo: Repository
) -> None:
    src = _many_files(tmp_path)
    snapshot_id = run_backup(repo, FilesSource([str(src)]), OPTIONS).snapshot_id
    # Damage one small file's blob in the middle of its pack: the pack read fails
    # part-way, and the blobs after it are still read one by one.
    victim = next(p for p in sorted(src.rglob("f*")) if len(p.read_bytes()) == 5000)
    tree = repo.load_tree(repo.load_snapshot(snapshot_id).tree)
    node = None
    for name in victim.parts[1:]:
        if node is not None:
            assert node.subtree is not None
            tree = repo.load_tree(node.subtree)
        (node,) = [n for n in tree.nodes if n.name == name]
    assert node is not None
    loc = repo.locate(node.content[0])
    pack = tmp_path / "vault" / pack_key(loc.pack_id)
    data = bytearray(pack.read_bytes())
    data[loc.offset + loc.length // 2] ^= 0xFF
    pack.write_bytes(bytes(data))

    dest = tmp_path / "dest"
    result = run_restore(repo, snapshot_id, DirectoryTarget(dest), allow_partial=True)
    out = dest / str(src).lstrip("/")
    damaged = {d.path for d in result.damaged}
    assert str(victim) in damaged
    intact = 0
    for path in src.rglob("*"):
        if path.is_dir():
            continue
        restored = (out / path.relative_to(src)).read_bytes()
        original = path.read_bytes()
        if str(path) in damaged:
            assert len(restored) == len(original) and restored != original
        else:
            assert restored == original, path
            intact += 1
    assert intact >= 12 * 40 + 4 - len(damaged)
    assert not [p for p in dest.rglob("*") if ".comet-" in p.name]


def _pack_work(repo: Repository) -> list[prefetch_module.PackWork]:
    by_pack: dict[bytes, list[tuple[bytes, BlobLocation]]] = {}
    for blob_id, loc in repo.index.items():
        if loc.blob_type == BlobType.DATA:
            by_pack.setdefault(loc.pack_id, []).append((blob_id, loc))
    return sorted(by_pack.items())


def test_two_workers_open_two_packs_at_once(
    tmp_path: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Opening blobs is what bounds restoring large files: a second worker opens the
    # next pack while the first is still at its own. Each pack read waits here until
    # two are under way; with one worker that never happens and the wait breaks.
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"big{i}.bin").write_bytes(os.urandom(17 << 20))
    run_backup(repo, FilesSource([str(src)]), OPTIONS)
    work = _pack_work(repo)
    assert len(work) >= 3
    both = threading.Barrier(2, timeout=30)
    read = repo.read_pack_blobs
    started: list[bytes] = []

    def read_pack_blobs(
        pack_id: bytes, blobs: list[tuple[bytes, BlobLocation]]
    ) -> Iterator[tuple[bytes, bytes]]:
        if len(started) < 2:
            started.append(pack_id)
            both.wait()
        yield from read(pack_id, blobs)

    monkeypatch.setattr(repo, "read_pack_blobs", read_pack_blobs)
    seen: dict[bytes, set[bytes]] = {pack_id: set() for pack_id, _ in work}
    ended: list[bytes] = []
    with prefetch_module.PackPrefetcher(repo, work, budget=1 << 20) as prefetcher:
        for item in prefetcher:
            assert item.pack_id not in ended  # a pack's blobs all come before its end
            if isinstance(item, prefetch_module.Blobs):
                seen[item.pack_id].update(blob_id for blob_id, _ in item.blobs)
            else:
                assert item.error is None, item.error
                ended.append(item.pack_id)
    assert sorted(ended) == sorted(seen)
    assert seen == {pack_id: {b for b, _ in blobs} for pack_id, blobs in work}
