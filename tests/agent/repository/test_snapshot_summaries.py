"""A backup's parent is chosen without reading every snapshot record again: the agent
remembers whose each record is, and reads only new ones and the chosen one."""

from __future__ import annotations

import os

from comet.agent.repository import Repository
from comet.agent.repository.snapshot import Snapshot
from comet.agent.repository.snapshot_summaries import SnapshotSummaries
from comet.agent.storage.memory import MemoryStorage

VAULT_KEY = bytes(range(32))


class Counting(MemoryStorage):
    """Counts reads of snapshot records."""

    snapshot_reads = 0

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if key.startswith("snapshots/"):
            self.snapshot_reads += 1
        return super().get(key, offset, length)


def _save(
    repo: Repository, item: str, end_ns: int, *, device: str = "dev", start_ns: int = 0
) -> bytes:
    snapshot = Snapshot(
        item_id=item,
        device_id=device,
        hostname="h",
        tree=os.urandom(32),
        start_ns=start_ns,
        end_ns=end_ns,
    )
    return repo.save_snapshot(snapshot)


def _reference(repo: Repository, item: str, device: str) -> Snapshot | None:
    """The rule before this cache: the greatest (end, start) of a full listing."""
    mine = [s for s in repo.list_snapshots() if s.item_id == item and s.device_id == device]
    return max(mine, key=lambda s: (s.end_ns, s.start_ns), default=None)


def test_chooses_what_a_full_listing_chooses() -> None:
    repo = Repository.init(MemoryStorage(), VAULT_KEY)
    for i in range(40):
        # Equal end times (and equal start times) among them: ties go to the smallest id.
        _save(repo, f"item-{i % 3}", end_ns=i // 4, device=f"dev-{i % 2}", start_ns=i % 2)
    summaries = SnapshotSummaries()
    for item in ("item-0", "item-1", "item-2", "item-9"):
        for device in ("dev-0", "dev-1"):
            for _ in range(2):  # first from the records, then from memory
                chosen = summaries.newest(repo, item, device)
                expected = _reference(repo, item, device)
                assert chosen == expected
                assert (chosen and chosen.id) == (expected and expected.id)


def test_reads_only_new_records_and_the_chosen_one() -> None:
    storage = Counting()
    repo = Repository.init(storage, VAULT_KEY)
    for i in range(50):
        _save(repo, f"item-{i % 5}", end_ns=i)
    summaries = SnapshotSummaries()
    assert summaries.newest(repo, "item-3", "dev") is not None
    assert storage.snapshot_reads == 50  # the first backup reads them all once
    storage.snapshot_reads = 0
    chosen = summaries.newest(repo, "item-3", "dev")
    assert chosen is not None and chosen.end_ns == 48
    assert storage.snapshot_reads == 1  # the chosen one, checked again in full
    new = _save(repo, "item-3", end_ns=100)
    storage.snapshot_reads = 0
    chosen = summaries.newest(repo, "item-3", "dev")
    assert chosen is not None and chosen.id == new
    assert storage.snapshot_reads == 1  # the new record, read once and kept


def test_a_forgotten_snapshot_is_never_chosen() -> None:
    storage = MemoryStorage()
    repo = Repository.init(storage, VAULT_KEY)
    older = _save(repo, "item", end_ns=1)
    newest = _save(repo, "item", end_ns=2)
    summaries = SnapshotSummaries()
    chosen = summaries.newest(repo, "item", "dev")
    assert chosen is not None and chosen.id == newest
    storage.delete(f"snapshots/{newest.hex()}")
    chosen = summaries.newest(repo, "item", "dev")
    assert chosen is not None and chosen.id == older
    storage.delete(f"snapshots/{older.hex()}")
    assert summaries.newest(repo, "item", "dev") is None


def test_a_damaged_record_is_passed_over_and_recorded() -> None:
    storage = MemoryStorage()
    repo = Repository.init(storage, VAULT_KEY)
    older = _save(repo, "item", end_ns=1)
    newest = _save(repo, "item", end_ns=2)
    summaries = SnapshotSummaries()
    chosen = summaries.newest(repo, "item", "dev")
    assert chosen is not None and chosen.id == newest
    # Damaged after it was remembered: the chosen record is read again, so it is noticed.
    key = f"snapshots/{newest.hex()}"
    data = bytearray(storage.get(key))
    data[-1] ^= 1
    storage.put(key, bytes(data))
    chosen = summaries.newest(repo, "item", "dev")
    assert chosen is not None and chosen.id == older
    assert key in repo.damaged
    # A damaged record never seen before is left out too.
    fresh = SnapshotSummaries()
    repo.damaged.clear()
    chosen = fresh.newest(repo, "item", "dev")
    assert chosen is not None and chosen.id == older
    assert key in repo.damaged


def test_repositories_are_kept_apart() -> None:
    one = Repository.init(MemoryStorage(), VAULT_KEY)
    two = Repository.init(MemoryStorage(), VAULT_KEY)
    first = _save(one, "item", end_ns=5)
    second = _save(two, "item", end_ns=1)
    summaries = SnapshotSummaries()
    chosen = summaries.newest(one, "item", "dev")
    assert chosen is not None and chosen.id == first
    chosen = summaries.newest(two, "item", "dev")
    assert chosen is not None and chosen.id == second
