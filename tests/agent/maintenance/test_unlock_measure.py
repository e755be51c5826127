"""Unlock (stale and forced) and remeasure on real repositories."""

from __future__ import annotations

from comet.agent.maintenance import measure, unlock
from comet.agent.repository import Repository
from comet.agent.repository.lock import STALE_AFTER_NS
from comet.agent.storage.memory import MemoryStorage
from tests.agent.maintenance.conftest import FILE_SIZE, VAULT_KEY, Source, prefix_bytes


class FakeClock:
    def __init__(self) -> None:
        self.ns = 1_700_000_000 * 10**9

    def __call__(self) -> int:
        return self.ns


def test_unlock_removes_stale_keeps_fresh_unless_all() -> None:
    # The storage's clock decides; the device's wall clock is a day ahead and unused.
    clock = FakeClock()
    storage = MemoryStorage(clock=clock)
    repo = Repository.init(storage, VAULT_KEY, now_ns=lambda: clock.ns + 86400 * 10**9)
    stale = repo.lock(hostname="crashed")
    stale._stop.set()  # its process died: nobody rewrites it
    clock.ns += STALE_AFTER_NS + 1
    fresh = repo.lock(hostname="running")

    result = unlock(repo)
    assert [i.key for i in result.removed] == [stale.info.key]
    assert "by the storage's clock" in result.reasons[0]
    assert [i.key for i in result.kept] == [fresh.info.key]
    assert {o.key for o in storage.list("locks/")} == {fresh.info.key}

    result = unlock(repo, remove_all=True)
    assert [i.key for i in result.removed] == [fresh.info.key] and result.kept == ()
    assert not list(storage.list("locks/"))
    stale.release()
    fresh.release()


def test_measure_numbers_add_up(storage: MemoryStorage, repo: Repository, source: Source) -> None:
    for name in "ab":
        source.write(name)
    s1 = source.backup(repo)
    source.remove("b")
    source.write("c")
    source.backup(repo)

    m = measure(repo)
    assert m.snapshot_count == 2
    assert m.pack_count == len(list(storage.list("data/")))
    assert m.pack_bytes == prefix_bytes(storage, "data/")
    assert m.index_bytes == prefix_bytes(storage, "index/")
    assert m.snapshot_bytes == prefix_bytes(storage, "snapshots/")
    assert m.total_bytes == m.pack_bytes + m.index_bytes + m.snapshot_bytes + m.other_bytes
    # measure's own lock was counted while it held it
    lock_size = m.total_bytes - prefix_bytes(storage, "")
    assert 0 < lock_size < 512
    blob_bytes = m.newest_bytes + m.older_only_bytes + m.unused_bytes
    assert blob_bytes + m.overhead_bytes == m.pack_bytes
    assert 0 < m.overhead_bytes < 1024 * m.pack_count
    assert 2 * FILE_SIZE < m.newest_bytes < 2 * FILE_SIZE + 64 * 1024  # a and c, trees
    assert FILE_SIZE < m.older_only_bytes < FILE_SIZE + 64 * 1024  # b, old trees
    assert m.unused_bytes == 0

    storage.delete(f"snapshots/{s1.hex()}")  # forgotten, not yet pruned
    after = measure(repo)
    assert after.snapshot_count == 1 and after.older_only_bytes == 0
    assert after.unused_bytes == m.older_only_bytes
    assert after.newest_bytes == m.newest_bytes
