"""A directory restore reads each pack about once: files are begun in windows of
``_WINDOW_FILES`` and a pack whose blobs straddle two windows is read once per window,
so a snapshot whose files fit in one window costs one ranged read per pack (a GET on
S3 or SFTP). Windows a quarter the size made a small-file restore ~4x the reads."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.repository import Repository
from comet.agent.repository.pack import pack_key
from comet.agent.repository.tree import NodeType
from comet.agent.restore import DirectoryTarget, run_restore
from comet.agent.restore import run as restore_run
from comet.agent.restore.metered import MeteredStorage
from comet.agent.storage.local import LocalStorage

VAULT_KEY = b"w" * 32
FILES = 3_000  # more than a quarter of a window, no more than one


def _small_files(root: Path) -> Path:
    src = root / "src"
    for n in range(FILES):
        folder = src / f"d{n // 64:03}"
        if n % 64 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{n % 64:02}").write_bytes(os.urandom(100 + n % 50))
    return src


class _KeyCounts(MeteredStorage):
    """Counts reads per object key."""

    def __init__(self, inner: LocalStorage) -> None:
        super().__init__(inner)
        self.by_key: Counter[str] = Counter()

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        self.by_key[key] += 1
        return super().get(key, offset, length)


def _data_packs(repo: Repository, snapshot: bytes) -> set[str]:
    """The keys of the packs holding the snapshot's file content (not its trees)."""
    keys: set[str] = set()
    todo = [repo.load_snapshot(snapshot).tree]
    while todo:
        for node in repo.load_tree(todo.pop()).nodes:
            if node.subtree is not None:
                todo.append(node.subtree)
            if node.type == NodeType.FILE:
                keys.update(pack_key(repo.locate(b).pack_id) for b in node.content)
    return keys


def _pack_reads(storage: LocalStorage, snapshot: bytes, dest: Path) -> dict[str, int]:
    """Reads of each data pack by a directory restore of ``snapshot``."""
    meter = _KeyCounts(storage)
    repo = Repository.open(meter, VAULT_KEY)
    try:
        packs = _data_packs(repo, snapshot)
        meter.by_key.clear()
        result = run_restore(repo, snapshot, DirectoryTarget(dest))
    finally:
        repo.close()
    assert result.files == FILES and not result.warnings
    return {key: meter.by_key[key] for key in packs}


@pytest.mark.timeout(120)
def test_a_snapshot_in_one_window_reads_each_pack_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = restore_run._WINDOW_FILES
    assert window // 4 < FILES <= window, "the snapshot must fit one window, not a quarter"
    storage = LocalStorage(tmp_path / "vault")
    repo = Repository.init(storage, VAULT_KEY)
    backup = run_backup(repo, FilesSource([str(_small_files(tmp_path))]), BackupOptions("i", "d"))
    repo.close()
    reads = _pack_reads(storage, backup.snapshot_id, tmp_path / "one")
    assert reads and set(reads.values()) == {1}, reads  # each under 1 MiB: one ranged read
    # The same snapshot through windows a quarter the size: each pack read per window.
    monkeypatch.setattr(restore_run, "_WINDOW_FILES", restore_run._WINDOW_FILES // 4)
    quarter = _pack_reads(storage, backup.snapshot_id, tmp_path / "quarter")
    assert min(quarter.values()) >= 3, quarter
