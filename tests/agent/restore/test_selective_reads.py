"""Restoring one folder of a large snapshot reads only the packs that hold its data."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

from comet.agent.backup.options import BackupOptions, FilesSource
from comet.agent.backup.run import run_backup
from comet.agent.repository import Repository
from comet.agent.restore.directory import DirectoryTarget
from comet.agent.restore.run import run_restore
from comet.agent.storage.base import ObjectInfo, Storage
from comet.agent.storage.local import LocalStorage

VAULT_KEY = b"s" * 32


class CountingStorage:
    """Records which objects are read, and how many bytes (a probe, not a fake: every
    call goes to the real local storage)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.reads: dict[str, int] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(key, offset, length)
        with self._lock:
            self.reads[key] = self.reads.get(key, 0) + len(data)
        return data

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def close(self) -> None:
        self.inner.close()


def test_one_folder_restore_reads_only_its_packs(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for folder in ("big-a", "big-b", "small"):
        (source / folder).mkdir(parents=True)
    for i in range(3):
        (source / "big-a" / f"{i}.bin").write_bytes(os.urandom(12 << 20))
        (source / "big-b" / f"{i}.bin").write_bytes(os.urandom(12 << 20))
    (source / "small" / "note.txt").write_text("just this\n")

    storage = CountingStorage(LocalStorage(tmp_path / "vault"))
    repo = Repository.init(storage, VAULT_KEY)
    result = run_backup(repo, FilesSource([str(source)]), BackupOptions("item", "device"))
    repo.close()
    packs = {o.key: o.size for o in storage.list("data/")}
    assert len(packs) >= 4  # the data really is spread over several packs

    storage.reads.clear()
    repo = Repository.open(storage, VAULT_KEY)
    dest = tmp_path / "dest"
    run_restore(repo, result.snapshot_id, DirectoryTarget(dest), paths=[str(source / "small")])
    data_read = {k: n for k, n in storage.reads.items() if k.startswith("data/")}
    assert (dest / str(source).lstrip("/") / "small" / "note.txt").read_text() == "just this\n"
    assert not (dest / str(source).lstrip("/") / "big-a").exists()
    # Trees and the one small file: a small fraction of the vault, never the big packs.
    assert sum(data_read.values()) < 0.1 * sum(packs.values())

    storage.reads.clear()
    run_restore(
        repo,
        result.snapshot_id,
        DirectoryTarget(tmp_path / "dest-b"),
        paths=[str(source / "big-b")],
    )
    read_b = {k for k in storage.reads if k.startswith("data/")}
    assert sum(storage.reads[k] for k in read_b) < 0.7 * sum(packs.values())
    # Each pack is fetched once however many of its blobs are needed.
    assert all(storage.reads[k] <= packs[k] for k in read_b)
    repo.close()
