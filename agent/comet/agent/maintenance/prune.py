"""``prune``: remove data no snapshot uses, repacking packs that are only partly used.

Crash-safe order (docs/format.md, "Prune"); at every step the objects in storage form a
valid repository in which every remaining snapshot restores:

1. Take the exclusive lock (LockedError while any other live lock exists).
2. Mark: walk the trees of every snapshot, collecting the ids of used blobs. If a tree is
   unreadable or a used blob is in no stored pack, stop (PruneRefusedError) before
   anything is written or deleted.
3. Plan: each pack is kept, deleted (no used blob, or named by no index) or repacked
   (used bytes below ``repack_below`` of its size). A pack that no index names is
   spared while it is younger than the grace period by the storage's own clock (its
   storage time against that of this prune's lock, rewritten just now): a writer may
   still be about to index it. Upload temp files older than the grace are removed.
4. Repack: copy the used blobs of repacked packs, verified, into new packs and store them.
   A crash here leaves only unindexed new packs, which the next prune deletes.
5. Store new index files covering every remaining pack (kept and new). A crash here
   leaves old and new index files side by side; all packs they name still exist.
6. Delete the old index files. A crash here leaves new ones plus some old ones whose
   packs still exist.
7. Delete the obsolete packs (unused, repacked, unindexed). No remaining index names
   them, so a crash here leaves only unreferenced packs, which a prune deletes once
   they are older than the grace period.
8. Release the lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from comet.agent.cancel import CancelToken
from comet.agent.errors import PruneRefusedError, RepositoryError
from comet.agent.maintenance.packs import load_pack_table, stored_pack_objects, stored_packs
from comet.agent.maintenance.reporter import MaintenanceReporter, NullMaintenanceReporter
from comet.agent.maintenance.walk import BlobSet, mark_reachable
from comet.agent.repository.format import PACK_TARGET_SIZE, BlobType
from comet.agent.repository.lock import RepositoryLock
from comet.agent.repository.pack import PackEntry, PackWriter, pack_key
from comet.agent.repository.repository import Repository

REPACK_BELOW = 0.8
INDEX_PACKS_PER_FILE = 256


@dataclass(frozen=True)
class PruneResult:
    """What a prune did. Byte counts cover ``data/`` and ``index/``."""

    snapshots: int
    blobs_used: int
    packs_kept: int
    packs_deleted: int
    packs_repacked: int
    packs_written: int
    blobs_repacked: int
    index_files_written: int
    index_files_deleted: int
    bytes_before: int
    bytes_after: int

    @property
    def bytes_freed(self) -> int:
        return self.bytes_before - self.bytes_after


def prune(
    repo: Repository,
    *,
    repack_below: float = REPACK_BELOW,
    hostname: str = "",
    reporter: MaintenanceReporter | None = None,
    cancel: CancelToken | None = None,
) -> PruneResult:
    """Delete every blob no snapshot uses, under the exclusive lock (see the module
    docstring for the order). Raises LockedError, PruneRefusedError, CancelledError,
    RepositoryError and StorageError; after any of them the vault is still valid and a
    new prune finishes the work."""
    cancel = cancel or CancelToken()
    cancel.check()
    with repo.lock(exclusive=True, hostname=hostname, purpose="prune") as lock:
        return prune_locked(repo, lock, repack_below=repack_below, reporter=reporter, cancel=cancel)


def prune_locked(
    repo: Repository,
    lock: RepositoryLock,
    *,
    repack_below: float = REPACK_BELOW,
    reporter: MaintenanceReporter | None = None,
    cancel: CancelToken | None = None,
) -> PruneResult:
    """``prune`` for a caller that already holds the exclusive ``lock``."""
    if not lock.info.exclusive:
        raise ValueError("prune needs the exclusive lock")
    reporter = reporter or NullMaintenanceReporter()
    cancel = cancel or CancelToken()
    try:
        repo.reload_index()
        table = load_pack_table(repo)
    except RepositoryError as e:
        raise PruneRefusedError(
            f"an index file is damaged ({e}); nothing was deleted. Rebuild the indexes first"
        ) from e
    used, snapshot_count = _mark(repo, lock, reporter, cancel)

    storage_now = lock.storage_now()
    grace = repo.lock_policy.prune_grace_ns
    objects = stored_pack_objects(repo.storage)
    stored = {pack_id: obj.size for pack_id, obj in objects.items()}
    bytes_before = sum(stored.values()) + table.index_bytes
    keep: list[bytes] = []  # entries stay in the table, decoded again when indexed
    repack: dict[bytes, list[PackEntry]] = {}
    # Left by crashed writers, or uploaded by a live one that has not indexed them yet.
    unindexed = [p for p in stored if p not in table.packs]
    delete = [p for p in unindexed if _older(objects[p].mtime_ns, storage_now, grace)]
    spared = len(unindexed) - len(delete)
    if spared:
        reporter.note(f"kept {spared} unindexed packs younger than the grace period")
    if storage_now is not None and grace:
        for name in repo.storage.remove_temporary(storage_now - grace):
            reporter.note(f"removed the leftover upload {name}")
    assigned = BlobSet(repo.index)
    for pack_id in sorted(table.packs):
        if pack_id not in stored:
            continue  # lost; if a used blob lived only there, the check below refuses
        entries = table.packs[pack_id]
        live = [e for e in entries if used.claim(e.blob_id, assigned)]
        used_bytes = sum(e.length for e in live)
        if not live:
            delete.append(pack_id)
        elif used_bytes < repack_below * stored[pack_id]:
            repack[pack_id] = live
        else:
            keep.append(pack_id)
    lost = len(used) - len(assigned)
    if lost:
        raise PruneRefusedError(
            f"{lost} blobs that snapshots use are in no stored pack; nothing was deleted. "
            "Rebuild the indexes, then run a check to see which snapshots are damaged"
        )

    new_packs = _repack(repo, lock, repack, reporter, cancel)
    cancel.check()

    lock.check()
    reporter.phase("write index", 0)
    remaining: list[bytes | tuple[bytes, list[PackEntry]]] = [*keep, *new_packs]
    written = 0
    for i in range(0, len(remaining), INDEX_PACKS_PER_FILE):
        batch = [
            (p, table.packs[p]) if isinstance(p, bytes) else p
            for p in remaining[i : i + INDEX_PACKS_PER_FILE]
        ]
        repo.save_index(batch)
        written += 1
    # From here on the job finishes rather than stopping half-way on cancel: every
    # remaining step only deletes objects the new index no longer needs.
    lock.check()
    reporter.phase("delete old index files", len(table.index_keys))
    for key in table.index_keys:
        repo.storage.delete(key)
        reporter.advance(1)
    obsolete = delete + sorted(repack)
    reporter.phase("delete packs", len(obsolete))
    for pack_id in obsolete:
        repo.storage.delete(pack_key(pack_id))
        reporter.advance(1)
        lock.refresh()
    repo.reload_index()
    after = sum(stored_packs(repo.storage).values())
    after += sum(o.size for o in repo.storage.list("index/"))
    return PruneResult(
        snapshots=snapshot_count,
        blobs_used=len(used),
        packs_kept=len(keep),
        packs_deleted=len(delete),
        packs_repacked=len(repack),
        packs_written=len(new_packs),
        blobs_repacked=sum(len(v) for v in repack.values()),
        index_files_written=written,
        index_files_deleted=len(table.index_keys),
        bytes_before=bytes_before,
        bytes_after=after,
    )


def _older(mtime_ns: int | None, storage_now: int | None, grace_ns: int) -> bool:
    """Whether storage times say an object is older than the grace period (unknown
    times never are, unless there is no grace at all)."""
    if grace_ns <= 0:
        return True
    if mtime_ns is None or storage_now is None:
        return False
    return storage_now - mtime_ns > grace_ns


def _mark(
    repo: Repository, lock: RepositoryLock, reporter: MaintenanceReporter, cancel: CancelToken
) -> tuple[BlobSet, int]:
    snapshot_keys = [o.key for o in repo.storage.list("snapshots/")]
    reporter.phase("mark", len(snapshot_keys))
    used = BlobSet(repo.index)
    for key in snapshot_keys:
        cancel.check()
        snapshot_id = key.rsplit("/", 1)[-1]
        try:
            snapshot = repo.load_snapshot(snapshot_id)
            mark_reachable(repo, snapshot.tree, used, cancel)
        except RepositoryError as e:
            raise PruneRefusedError(
                f"snapshot {snapshot_id[:12]} cannot be read completely ({e}); nothing was "
                "deleted. Run a check, and delete that snapshot if it is damaged"
            ) from e
        reporter.advance(1)
        lock.refresh()
    return used, len(snapshot_keys)


def _repack(
    repo: Repository,
    lock: RepositoryLock,
    repack: dict[bytes, list[PackEntry]],
    reporter: MaintenanceReporter,
    cancel: CancelToken,
) -> list[tuple[bytes, list[PackEntry]]]:
    """Copy the listed blobs into new packs (one pack type per blob type, as writers do)
    and store them; return the new packs. Each blob is decrypted and verified before it
    is copied, so a damaged blob is never carried forward silently."""
    reporter.phase("repack", len(repack))
    writers: dict[BlobType, PackWriter] = {}
    out: list[tuple[bytes, list[PackEntry]]] = []

    def store(writer: PackWriter) -> None:
        pack_id, data = writer.finish(repo.sealer)
        repo.storage.put(pack_key(pack_id), data)
        out.append((pack_id, writer.entries))
        lock.refresh()

    for pack_id in sorted(repack):
        cancel.check()
        data = repo.storage.get(pack_key(pack_id))
        for e in sorted(repack[pack_id], key=lambda e: e.offset):
            stored = data[e.offset : e.offset + e.length]
            # Verify only: the stored form does not depend on its pack, so it is copied.
            try:
                repo.sealer.open_blob(e.blob_type, e.blob_id, stored, f"pack {pack_id.hex()}")
            except RepositoryError as err:
                raise PruneRefusedError(
                    f"a used blob is damaged ({err}); no old data was deleted. Run a "
                    "check with data reading to see which snapshots it affects"
                ) from err
            writer = writers.setdefault(e.blob_type, PackWriter())
            writer.add(e.blob_id, e.blob_type, stored, e.raw_length)
            if writer.size >= PACK_TARGET_SIZE:
                store(writers.pop(e.blob_type))
        reporter.advance(1)
    for blob_type in sorted(writers):
        store(writers[blob_type])
    return out
