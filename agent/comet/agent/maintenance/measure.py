"""``measure``: recompute how big a vault is and what its bytes are used by."""

from __future__ import annotations

from dataclasses import dataclass

from comet.agent.cancel import CancelToken
from comet.agent.maintenance.packs import stored_packs
from comet.agent.maintenance.reporter import MaintenanceReporter, NullMaintenanceReporter
from comet.agent.maintenance.walk import BlobSet, mark_reachable
from comet.agent.repository.repository import Repository
from comet.agent.repository.snapshot import Snapshot


@dataclass(frozen=True)
class MeasureResult:
    """Sizes in stored bytes. ``total_bytes`` = ``pack_bytes + index_bytes +
    snapshot_bytes + other_bytes`` (config, keys, locks), and ``pack_bytes`` =
    ``newest_bytes + older_only_bytes + unused_bytes + overhead_bytes``.

    Blob bytes count each blob once: ``newest_bytes`` are used by the newest snapshot of
    some (item, device); ``older_only_bytes`` only by older snapshots (what a stricter
    retention could free); ``unused_bytes`` by no snapshot (what a prune frees);
    ``overhead_bytes`` are pack headers and trailers, duplicate copies and unindexed
    packs."""

    total_bytes: int
    pack_bytes: int
    index_bytes: int
    snapshot_bytes: int
    other_bytes: int
    newest_bytes: int
    older_only_bytes: int
    unused_bytes: int
    overhead_bytes: int
    pack_count: int
    snapshot_count: int
    index_count: int


def measure(
    repo: Repository,
    *,
    hostname: str = "",
    reporter: MaintenanceReporter | None = None,
    cancel: CancelToken | None = None,
) -> MeasureResult:
    """Measure the vault under a shared lock (backups may run meanwhile).
    Raises LockedError, CancelledError, RepositoryError and StorageError."""
    reporter = reporter or NullMaintenanceReporter()
    cancel = cancel or CancelToken()
    cancel.check()
    with repo.lock(hostname=hostname, purpose="measure", for_reading=True) as lock:
        repo.reload_index()
        sizes = {"data/": 0, "index/": 0, "snapshots/": 0, "": 0}
        counts = dict.fromkeys(sizes, 0)
        for obj in repo.storage.list(""):
            prefix = next(
                (p for p in ("data/", "index/", "snapshots/") if obj.key.startswith(p)), ""
            )
            sizes[prefix] += obj.size
            counts[prefix] += 1
        snapshots = repo.list_snapshots()
        newest: dict[tuple[str, str], Snapshot] = {}
        for s in snapshots:  # oldest first, so the last one of a group wins
            newest[(s.item_id, s.device_id)] = s
        newest_ids = {s.id for s in newest.values()}
        reporter.phase("mark", len(snapshots))
        new_used = BlobSet(repo.index)
        for s in newest.values():
            mark_reachable(repo, s.tree, new_used, cancel)
            reporter.advance(1)
        old_used = BlobSet(repo.index)
        for s in snapshots:
            if s.id not in newest_ids:
                mark_reachable(repo, s.tree, old_used, cancel)
                reporter.advance(1)
            lock.refresh()
        stored = stored_packs(repo.storage)
        newest_bytes = older_bytes = unused_bytes = 0
        for blob_id, loc in repo.index.items():
            if loc.pack_id not in stored:
                continue
            if blob_id in new_used:
                newest_bytes += loc.length
            elif blob_id in old_used:
                older_bytes += loc.length
            else:
                unused_bytes += loc.length
    pack_bytes = sizes["data/"]
    return MeasureResult(
        total_bytes=sum(sizes.values()),
        pack_bytes=pack_bytes,
        index_bytes=sizes["index/"],
        snapshot_bytes=sizes["snapshots/"],
        other_bytes=sizes[""],
        newest_bytes=newest_bytes,
        older_only_bytes=older_bytes,
        unused_bytes=unused_bytes,
        overhead_bytes=pack_bytes - newest_bytes - older_bytes - unused_bytes,
        pack_count=len(stored),
        snapshot_count=len(snapshots),
        index_count=counts["index/"],
    )
