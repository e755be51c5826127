"""Fixtures for maintenance tests: real repositories built by real backups, and a
helper that restores a snapshot and compares it byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, run_backup
from comet.agent.repository import Repository
from comet.agent.restore import DirectoryTarget, run_restore
from comet.agent.storage.memory import MemoryStorage

VAULT_KEY = b"m" * 32
OPTIONS = BackupOptions("item-1", "device-1", hostname="host")
FILE_SIZE = 512 * 1024


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def repo(storage: MemoryStorage) -> Repository:
    return Repository.init(storage, VAULT_KEY)


class Source:
    """A source directory whose content at each backup is remembered."""

    def __init__(self, root: Path) -> None:
        self.root = root / "src"
        self.root.mkdir()
        self.expected: dict[bytes, dict[str, bytes]] = {}

    def write(self, name: str, size: int = FILE_SIZE) -> None:
        (self.root / name).write_bytes(os.urandom(size))

    def remove(self, name: str) -> None:
        (self.root / name).unlink()

    def backup(self, repo: Repository, options: BackupOptions = OPTIONS) -> bytes:
        result = run_backup(repo, FilesSource([str(self.root)]), options)
        self.expected[result.snapshot_id] = {
            p.name: p.read_bytes() for p in self.root.iterdir() if p.is_file()
        }
        return result.snapshot_id

    def assert_restores(
        self, repo: Repository, snapshot_id: bytes, dest: Path, names: list[str] | None = None
    ) -> None:
        """Restore the snapshot (or only ``names``) and compare every file."""
        paths = None if names is None else [str(self.root / n) for n in names]
        run_restore(repo, snapshot_id, DirectoryTarget(dest), paths=paths)
        restored_dir = dest / self.root.relative_to("/")
        expected = self.expected[snapshot_id]
        wanted = expected if names is None else {n: expected[n] for n in names}
        restored = {p.name: p.read_bytes() for p in restored_dir.iterdir() if p.is_file()}
        assert restored == wanted


@pytest.fixture
def source(tmp_path: Path) -> Source:
    return Source(tmp_path)


def clone(storage: MemoryStorage) -> MemoryStorage:
    copy = MemoryStorage()
    for obj in storage.list(""):
        copy.put(obj.key, storage.get(obj.key))
    return copy


def prefix_bytes(storage: MemoryStorage, prefix: str) -> int:
    return sum(o.size for o in storage.list(prefix))
