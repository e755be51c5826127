"""``rebuild_indexes``: write fresh index files from the packs' own trailers.

Needs no existing index: every pack names its blobs in its trailer (docs/format.md,
"Packs"). Order: list the old index files, read every pack's trailer, store the new
index files, and only then delete the old ones, so a crash at any point leaves at least
as complete an index as before. A damaged pack is reported and left in place (its blobs
are then indexed only if an old index file listed them; ``check`` tells which snapshots
are affected).
"""

from __future__ import annotations

from dataclasses import dataclass

from comet.agent.cancel import CancelToken
from comet.agent.errors import RepositoryError
from comet.agent.maintenance.packs import load_pack_table, stored_packs
from comet.agent.maintenance.prune import INDEX_PACKS_PER_FILE
from comet.agent.maintenance.reporter import MaintenanceReporter, NullMaintenanceReporter
from comet.agent.repository.pack import PackEntry, PackReader
from comet.agent.repository.repository import Repository
from comet.agent.storage.base import StorageError, TransientStorageError


@dataclass(frozen=True)
class DamagedPack:
    """A pack whose trailer could not be read."""

    pack_id: bytes
    message: str


@dataclass(frozen=True)
class ReindexResult:
    packs_indexed: int
    blobs_indexed: int
    index_files_written: int
    index_files_deleted: int
    damaged_packs: tuple[DamagedPack, ...]
    carried_over: int = 0  # damaged packs kept indexed from the old index files


def rebuild_indexes(
    repo: Repository,
    *,
    hostname: str = "",
    reporter: MaintenanceReporter | None = None,
    cancel: CancelToken | None = None,
) -> ReindexResult:
    """Replace every index file with ones rebuilt from the packs, under the exclusive
    lock. Raises LockedError, CancelledError (nothing deleted yet) and transient or
    listing StorageErrors; damaged packs are in the result instead."""
    reporter = reporter or NullMaintenanceReporter()
    cancel = cancel or CancelToken()
    cancel.check()
    with repo.lock(exclusive=True, hostname=hostname, purpose="reindex") as lock:
        old_keys = [o.key for o in repo.storage.list("index/")]
        packs = sorted(stored_packs(repo.storage))
        reader = PackReader(repo.storage, repo.sealer)
        reporter.phase("read pack trailers", len(packs))
        batch: list[tuple[bytes, list[PackEntry]]] = []
        damaged: list[DamagedPack] = []
        indexed = blobs = written = carried = 0
        for pack_id in packs:
            cancel.check()
            try:
                entries = reader.read_entries(pack_id)
            except TransientStorageError:
                raise
            except (RepositoryError, StorageError) as e:
                damaged.append(DamagedPack(pack_id, str(e)))
                reporter.note(f"pack {pack_id.hex()} is damaged and was not indexed: {e}")
                continue
            batch.append((pack_id, entries))
            indexed += 1
            blobs += len(entries)
            reporter.advance(1)
            if len(batch) >= INDEX_PACKS_PER_FILE:
                repo.save_index(batch)
                written += 1
                batch = []
                lock.refresh()
        if damaged:
            # A damaged trailer does not mean damaged blobs: keep what the old index
            # files knew about those packs, so reindexing never loses a readable blob.
            known = load_pack_table(repo, tolerant=True).packs
            for d in damaged:
                if d.pack_id in known:
                    batch.append((d.pack_id, known[d.pack_id]))
                    carried += 1
        if batch:
            repo.save_index(batch)
            written += 1
        cancel.check()
        for key in old_keys:
            repo.storage.delete(key)
        repo.reload_index()
    return ReindexResult(indexed, blobs, written, len(old_keys), tuple(damaged), carried)
