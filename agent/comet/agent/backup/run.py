"""``run_backup``: one backup job from source to committed snapshot."""

from __future__ import annotations

import socket

from comet.agent.backup.archiver import Archiver
from comet.agent.backup.checkpoint import checkpoint_on_cancel
from comet.agent.backup.options import BackupOptions, BackupResult, FilesSource, ProgramSource
from comet.agent.backup.parent import ParentDir
from comet.agent.cancel import CancelToken
from comet.agent.errors import DataMissingError, RepositoryError
from comet.agent.reporter import BackupReporter, JobWarning, NullBackupReporter
from comet.agent.repository.blob_writer import BlobWriter
from comet.agent.repository.lock import RepositoryLock
from comet.agent.repository.repository import Repository
from comet.agent.repository.snapshot import Snapshot
from comet.agent.repository.snapshot_summaries import SnapshotSummaries

# The agent's memory of which snapshot is whose, shared by its backups.
SUMMARIES = SnapshotSummaries()


def find_parent(
    repo: Repository, item_id: str, device_id: str, *, summaries: SnapshotSummaries = SUMMARIES
) -> Snapshot | None:
    """The newest snapshot of the same item and device, if any. Reads only the
    snapshot records ``summaries`` has not seen, and the chosen one."""
    return summaries.newest(repo, item_id, device_id)


def run_backup(
    repo: Repository,
    source: FilesSource | ProgramSource,
    options: BackupOptions,
    *,
    reporter: BackupReporter | None = None,
    cancel: CancelToken | None = None,
) -> BackupResult:
    """Back up ``source`` and commit a snapshot; return what was done.

    Holds a shared repository lock. Per-file problems are returned as warnings. Raises
    CancelledError (no snapshot is written, but an index of the finished packs is),
    ProgramFailedError, SourceError, RepositoryError subclasses and StorageError."""
    reporter = reporter or NullBackupReporter()
    cancel = cancel or CancelToken()
    cancel.check()
    start_ns = repo.now_ns()
    hostname = options.hostname or socket.gethostname()
    with repo.lock(hostname=hostname, purpose="backup") as lock:
        repo.refresh_index()
        parent = find_parent(repo, options.item_id, options.device_id)
        if parent is not None:
            reporter.expected(parent.total_bytes, parent.files)

        def pack_stored(size: int) -> None:
            reporter.bytes_uploaded(size)
            lock.refresh()  # stops the upload early if the lock was removed

        with (
            repo.blob_writer(on_pack_stored=pack_stored) as writer,
            checkpoint_on_cancel(writer, cancel),
        ):
            archiver = Archiver(
                repo,
                writer,
                rescan_unchanged=options.rescan_unchanged,
                reporter=reporter,
                cancel=cancel,
            )
            if isinstance(source, ProgramSource):
                tree = archiver.save_program(source)
                paths: tuple[str, ...] = ()
                command = source.command
                program = (command,) if isinstance(command, str) else tuple(command)
            else:
                tree = archiver.save_files(source, _load_root(repo, parent, archiver))
                paths = tuple(source.includes)
                program = None
            cancel.check()
            writer.flush()
        cancel.check()
        _confirm_data(repo, writer, lock)
        snapshot = Snapshot(
            item_id=options.item_id,
            device_id=options.device_id,
            hostname=hostname,
            tree=tree,
            start_ns=start_ns,
            end_ns=repo.now_ns(),
            paths=paths,
            program=program,
            tags=tuple(options.tags),
            parent=parent.id if parent else None,
            files=archiver.files,
            dirs=archiver.dirs,
            total_bytes=archiver.total_bytes,
            uploaded_bytes=writer.uploaded_bytes,
            blobs=archiver.blobs,
            new_blobs=writer.new_blobs,
            warnings=len(archiver.warnings),
        )
        snapshot_id = repo.save_snapshot(snapshot)
    return BackupResult(
        snapshot_id=snapshot_id,
        parent_id=snapshot.parent,
        files=archiver.files,
        dirs=archiver.dirs,
        total_bytes=archiver.total_bytes,
        bytes_read=archiver.bytes_read,
        uploaded_bytes=writer.uploaded_bytes,
        blobs=archiver.blobs,
        new_blobs=writer.new_blobs,
        warnings=tuple(archiver.warnings),
        reader_files=archiver.reader_files,
        reader_peak_rss=archiver.reader_peak_rss,
    )


def _confirm_data(repo: Repository, writer: BlobWriter, lock: RepositoryLock) -> None:
    """Before the commit: the lock is still ours, and every pack the snapshot needs (new
    and deduplicated) and every index file this backup wrote is still in storage. One
    listing each of ``data/`` and ``index/``, however many packs."""
    lock.check()
    missing = writer.relied_packs - repo.stored_pack_ids()
    indexes = {o.key for o in repo.storage.list("index/")}
    lost_indexes = [i for i in writer.index_ids if f"index/{i.hex()}" not in indexes]
    if missing or lost_indexes:
        raise DataMissingError(
            f"{len(missing)} packs and {len(lost_indexes)} index files this backup relies on "
            "disappeared from the vault while it ran (a prune on another device after this "
            "job's lock was removed?); no snapshot was committed. Run the backup again"
        )


def _load_root(repo: Repository, parent: Snapshot | None, archiver: Archiver) -> ParentDir | None:
    if parent is None:
        return None
    try:
        return ParentDir.load(repo, parent.tree)
    except RepositoryError as e:
        archiver.warn("", f"parent snapshot {parent.id.hex()[:12]} is unreadable: {e}")
        return None


__all__ = ["JobWarning", "find_parent", "run_backup"]
