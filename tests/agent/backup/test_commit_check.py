"""A backup never commits a snapshot whose data vanished while it ran, and stops when
its lock is removed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions, FilesSource, ProgramSource, run_backup
from comet.agent.errors import DataMissingError, LockLostError
from comet.agent.repository import Repository
from comet.agent.storage.memory import MemoryStorage
from tests.agent.backup.conftest import VAULT_KEY

OPTIONS = BackupOptions("item", "device", hostname="host")


class _Saboteur:
    """Does ``action`` once, when the backup stores its first index file (after its
    packs, before its commit): another device removing locks or a pack."""

    def __init__(self, inner: MemoryStorage, action: str) -> None:
        self.inner = inner
        self.action = action
        self.done = False

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)
        if key.startswith("index/") and not self.done:
            self.done = True
            if self.action == "unlock":
                for obj in list(self.inner.list("locks/")):
                    self.inner.delete(obj.key)
            else:  # a prune elsewhere removes a pack the backup reuses
                self.inner.delete(self.action)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_a_reused_pack_that_vanished_blocks_the_commit(tmp_path: Path) -> None:
    storage = MemoryStorage()
    repo = Repository.init(storage, VAULT_KEY)
    src = tmp_path / "src"
    src.mkdir()
    (src / "old").write_bytes(os.urandom(300_000))
    run_backup(repo, FilesSource([str(src)]), OPTIONS)
    (old_pack,) = [o.key for o in storage.list("data/") if storage.stat(o.key).size > 200_000]
    (src / "new").write_bytes(os.urandom(300_000))
    snapshots = {o.key for o in storage.list("snapshots/")}

    sabotaged = Repository.open(_Saboteur(storage, old_pack), VAULT_KEY)  # type: ignore[arg-type]
    # A new item: nothing is taken from a parent snapshot, "old" deduplicates.
    with pytest.raises(DataMissingError, match="no snapshot was committed"):
        run_backup(sabotaged, FilesSource([str(src)]), BackupOptions("item2", "device"))
    assert {o.key for o in storage.list("snapshots/")} == snapshots


def test_a_removed_lock_blocks_the_commit() -> None:
    storage = MemoryStorage()
    Repository.init(storage, VAULT_KEY)
    repo = Repository.open(_Saboteur(storage, "unlock"), VAULT_KEY)  # type: ignore[arg-type]
    source = ProgramSource(["head", "-c", "200000", "/dev/urandom"], save_as="x")
    with pytest.raises(LockLostError, match="was removed"):
        run_backup(repo, source, OPTIONS)
    assert not list(storage.list("snapshots/"))
