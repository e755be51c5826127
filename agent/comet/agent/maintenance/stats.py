"""``snapshot_stats``: how much a set of snapshots restores to, how much storage its
data takes once deduplicated and compressed, and the same per (device, item).

Reads trees only (``mark_reachable``), never file data; blob sizes come from the
index. Every blob is counted once per group and once overall, however many files or
snapshots use it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from comet.agent.cancel import CancelToken
from comet.agent.maintenance.walk import BlobSet, mark_reachable
from comet.agent.repository.format import BlobType
from comet.agent.repository.repository import Repository
from comet.agent.repository.snapshot import Snapshot


@dataclass(frozen=True)
class UsageTotals:
    """``restore_bytes``: the file bytes a restore of every snapshot writes (the sum
    over snapshots); ``raw_bytes``: the distinct file data they hold, after
    deduplication; ``stored_bytes``: what that data and the snapshots' trees take in the
    vault, compressed and encrypted. ``blobs`` counts distinct data and tree blobs."""

    snapshots: int
    files: int
    restore_bytes: int
    raw_bytes: int
    stored_bytes: int
    blobs: int

    @property
    def dedup_ratio(self) -> float:
        """Restore size over deduplicated size (1.0 when nothing is shared)."""
        return self.restore_bytes / self.raw_bytes if self.raw_bytes else 1.0

    @property
    def compression_ratio(self) -> float:
        return self.raw_bytes / self.stored_bytes if self.stored_bytes else 1.0


@dataclass(frozen=True)
class GroupUsage:
    device_id: str
    item_id: str
    totals: UsageTotals


@dataclass(frozen=True)
class SnapshotStats:
    totals: UsageTotals
    groups: tuple[GroupUsage, ...]


def _totals(repo: Repository, snapshots: Sequence[Snapshot], used: BlobSet) -> UsageTotals:
    raw = stored = 0
    for blob_id, loc in repo.index.items():  # blobs the index lacks have no size to add
        if blob_id in used:
            stored += loc.length
            if loc.blob_type == BlobType.DATA:  # trees are not file content
                raw += loc.raw_length
    return UsageTotals(
        snapshots=len(snapshots),
        files=sum(s.files for s in snapshots),
        restore_bytes=sum(s.total_bytes for s in snapshots),
        raw_bytes=raw,
        stored_bytes=stored,
        blobs=len(used),
    )


def snapshot_stats(
    repo: Repository, snapshots: Sequence[Snapshot], *, cancel: CancelToken | None = None
) -> SnapshotStats:
    """Totals over ``snapshots`` and per (device, item) group, groups in first-seen
    order. Raises the RepositoryError of an unreadable tree."""
    cancel = cancel or CancelToken()
    groups: dict[tuple[str, str], list[Snapshot]] = {}
    for s in snapshots:
        groups.setdefault((s.device_id, s.item_id), []).append(s)
    everything = BlobSet(repo.index)
    out = []
    for (device_id, item_id), group in groups.items():
        used = BlobSet(repo.index)
        for s in group:
            mark_reachable(repo, s.tree, used, cancel)
        everything.merge(used)
        out.append(GroupUsage(device_id, item_id, _totals(repo, group, used)))
    return SnapshotStats(_totals(repo, snapshots, everything), tuple(out))
