"""``check``: verify a vault's structure and, with ``read_data``, every stored byte.

Structure: the config and key files, every index file, every indexed pack present with
the exact size its entries imply, every snapshot readable, every tree of every snapshot
readable and every data blob it names indexed. ``read_data`` (deep verify) also downloads
every pack, checks it against its name, reads its trailer and decrypts and hashes every
blob. Damage is then traced to the snapshots and the file paths it affects.

A damaged vault is a result with error problems, not an exception: the caller picks the
job status. Read-only; holds a shared lock, so backups may run meanwhile (or none,
with a warning, on a vault it cannot write to).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from comet.agent.cancel import CancelToken
from comet.agent.errors import RepositoryError
from comet.agent.maintenance.packs import (
    PackEntries,
    expected_pack_size,
    load_pack_table,
    parse_pack,
    stored_packs,
)
from comet.agent.maintenance.reporter import MaintenanceReporter, NullMaintenanceReporter
from comet.agent.maintenance.walk import BlobSet
from comet.agent.repository.crypto import object_id
from comet.agent.repository.format import MAGIC_CONFIG, MAGIC_KEY, check_header
from comet.agent.repository.pack import pack_key
from comet.agent.repository.repository import Repository
from comet.agent.repository.snapshot import Snapshot
from comet.agent.repository.tree import NodeType
from comet.agent.storage.base import StorageError, TransientStorageError


class ProblemKind(enum.StrEnum):
    CONFIG = "config"
    KEY = "key"
    INDEX = "index"
    SNAPSHOT = "snapshot"
    TREE = "tree"
    BLOB_MISSING = "blob_missing"  # referenced, in no index
    BLOB_DAMAGED = "blob_damaged"  # does not decrypt or hash to its id
    PACK_MISSING = "pack_missing"
    PACK_SIZE = "pack_size"
    PACK_DAMAGED = "pack_damaged"  # content or trailer does not match
    PACK_UNINDEXED = "pack_unindexed"  # harmless leftover of a crashed writer
    LOCK = "lock"  # the vault could not be locked (read-only or full): checked unlocked


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    subject: str  # the object key or blob id concerned
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}"


@dataclass(frozen=True)
class AffectedSnapshot:
    """A snapshot that cannot be restored completely, and the absolute snapshot paths
    of the files (or directories whose listing is lost) that damage reaches."""

    snapshot_id: bytes
    item_id: str
    device_id: str
    start_ns: int
    paths: tuple[str, ...]


@dataclass(frozen=True)
class IntegrityReport:
    """Which data is lost and what it affects. Empty when nothing is lost."""

    damaged_packs: tuple[bytes, ...] = ()
    lost_blobs: tuple[bytes, ...] = ()
    affected: tuple[AffectedSnapshot, ...] = ()

    @property
    def affected_snapshot_ids(self) -> tuple[bytes, ...]:
        return tuple(a.snapshot_id for a in self.affected)


@dataclass(frozen=True)
class CheckResult:
    problems: tuple[Problem, ...]
    report: IntegrityReport
    read_data: bool
    snapshots: int
    trees: int
    data_blobs: int
    packs: int
    packs_read: int
    bytes_read: int

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == Severity.ERROR)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _State:
    problems: list[Problem] = field(default_factory=list)
    bad_packs: set[bytes] = field(default_factory=set)  # every pack with a problem
    lost_packs: set[bytes] = field(default_factory=set)  # none of its blobs can be trusted
    damaged_blobs: set[bytes] = field(default_factory=set)  # failed to open, or missing
    bad_trees: set[bytes] = field(default_factory=set)
    snapshots: list[Snapshot] = field(default_factory=list)
    trees: int = 0
    data_blobs: int = 0
    packs_read: int = 0
    bytes_read: int = 0

    def add(self, kind: ProblemKind, subject: str, message: str, *, warning: bool = False) -> None:
        severity = Severity.WARNING if warning else Severity.ERROR
        self.problems.append(Problem(kind, subject, message, severity))


def check(
    repo: Repository,
    *,
    read_data: bool = False,
    hostname: str = "",
    reporter: MaintenanceReporter | None = None,
    cancel: CancelToken | None = None,
) -> CheckResult:
    """Check the vault; with ``read_data`` read and verify every blob. Raises only
    LockedError, CancelledError and transient StorageErrors; damage is in the result."""
    reporter = reporter or NullMaintenanceReporter()
    cancel = cancel or CancelToken()
    cancel.check()
    st = _State()
    with repo.lock(hostname=hostname, purpose="verify", for_reading=True) as lock:
        if lock.warning:
            st.add(ProblemKind.LOCK, "locks/", lock.warning, warning=True)
        _check_config_and_keys(repo, st)
        for key, error in repo.reload_index(skip_damaged=True):
            st.add(ProblemKind.INDEX, key, f"index file {key} is unreadable: {error}")
        table = load_pack_table(repo, tolerant=True)
        stored = stored_packs(repo.storage)
        _check_packs(table.packs, stored, st)
        _check_snapshots(repo, st, reporter, cancel, lock.refresh)
        if read_data:
            _read_packs(repo, table.packs, stored, st, reporter, cancel, lock.refresh)
        report = _trace(repo, st, reporter, cancel)
    return CheckResult(
        problems=tuple(st.problems),
        report=report,
        read_data=read_data,
        snapshots=len(st.snapshots),
        trees=st.trees,
        data_blobs=st.data_blobs,
        packs=len(table.packs),
        packs_read=st.packs_read,
        bytes_read=st.bytes_read,
    )


def _check_config_and_keys(repo: Repository, st: _State) -> None:
    try:
        check_header(repo.storage.get("config"), MAGIC_CONFIG, "config")
    except TransientStorageError:
        raise
    except (RepositoryError, StorageError) as e:
        st.add(ProblemKind.CONFIG, "config", f"the config object is unreadable: {e}")
    keys = [o.key for o in repo.storage.list("keys/")]
    if not keys:
        st.add(ProblemKind.KEY, "keys/", "the repository has no key files")
    for key in keys:
        try:
            check_header(repo.storage.get(key), MAGIC_KEY, key)
        except TransientStorageError:
            raise
        except (RepositoryError, StorageError) as e:
            st.add(ProblemKind.KEY, key, f"key file {key} is unreadable: {e}")


def _check_packs(packs: PackEntries, stored: dict[bytes, int], st: _State) -> None:
    for pack_id, entries in packs.items():
        key = pack_key(pack_id)
        if pack_id not in stored:
            st.bad_packs.add(pack_id)
            st.lost_packs.add(pack_id)
            st.add(ProblemKind.PACK_MISSING, key, f"pack {pack_id.hex()} is missing")
            continue
        expected = expected_pack_size(entries)
        if stored[pack_id] != expected:
            st.bad_packs.add(pack_id)
            st.lost_packs.add(pack_id)  # until read_data judges its blobs one by one
            st.add(
                ProblemKind.PACK_SIZE,
                key,
                f"pack {pack_id.hex()} is {stored[pack_id]} bytes; its index entries "
                f"imply {expected}",
            )
    for pack_id in stored.keys() - packs.keys():
        st.add(
            ProblemKind.PACK_UNINDEXED,
            pack_key(pack_id),
            f"pack {pack_id.hex()} is in no index (left by an interrupted job; a prune "
            "removes it, a rebuild of the indexes would adopt it)",
            warning=True,
        )


def _check_snapshots(
    repo: Repository,
    st: _State,
    reporter: MaintenanceReporter,
    cancel: CancelToken,
    refresh: Callable[[], None],
) -> None:
    keys = [o.key for o in repo.storage.list("snapshots/")]
    reporter.phase("check snapshots", len(keys))
    seen = BlobSet(repo.index)
    for key in sorted(keys):
        cancel.check()
        snapshot_id = key.rsplit("/", 1)[-1]
        try:
            snapshot = repo.load_snapshot(snapshot_id)
        except TransientStorageError:
            raise
        except (RepositoryError, StorageError) as e:
            st.add(ProblemKind.SNAPSHOT, key, f"snapshot {snapshot_id} is unreadable: {e}")
            continue
        st.snapshots.append(snapshot)
        _walk_structure(repo, snapshot.tree, seen, st, cancel)
        reporter.advance(1)
        refresh()


def _walk_structure(
    repo: Repository, root: bytes, seen: BlobSet, st: _State, cancel: CancelToken
) -> None:
    """Read every tree below ``root`` not seen yet; record unreadable trees and data
    blobs that are in no index. ``seen`` holds only blob ids."""
    if not seen.add(root):
        return
    stack = [root]
    while stack:
        cancel.check()
        tree_id = stack.pop()
        try:
            tree = repo.load_tree(tree_id)
        except TransientStorageError:
            raise
        except (RepositoryError, StorageError) as e:
            st.bad_trees.add(tree_id)
            st.add(ProblemKind.TREE, tree_id.hex(), f"tree {tree_id.hex()} is unreadable: {e}")
            continue
        st.trees += 1
        for node in tree.nodes:
            for blob_id in node.content:
                if not seen.add(blob_id):
                    continue
                st.data_blobs += 1
                if seen.is_unindexed(blob_id):
                    st.damaged_blobs.add(blob_id)
                    st.add(
                        ProblemKind.BLOB_MISSING,
                        blob_id.hex(),
                        f"data blob {blob_id.hex()} is in no index",
                    )
            if node.subtree is not None and seen.add(node.subtree):
                stack.append(node.subtree)


def _read_packs(
    repo: Repository,
    packs: PackEntries,
    stored: dict[bytes, int],
    st: _State,
    reporter: MaintenanceReporter,
    cancel: CancelToken,
    refresh: Callable[[], None],
) -> None:
    to_read = sorted(p for p in packs if p in stored)
    reporter.phase("read packs", len(to_read))
    for pack_id in to_read:
        cancel.check()
        key = pack_key(pack_id)
        try:
            data = repo.storage.get(key)
        except TransientStorageError:
            raise
        except StorageError as e:
            st.bad_packs.add(pack_id)
            st.lost_packs.add(pack_id)
            st.add(ProblemKind.PACK_DAMAGED, key, f"pack {pack_id.hex()} is unreadable: {e}")
            continue
        st.lost_packs.discard(pack_id)
        st.packs_read += 1
        st.bytes_read += len(data)
        if object_id(data) != pack_id:
            st.bad_packs.add(pack_id)
            st.add(
                ProblemKind.PACK_DAMAGED,
                key,
                f"pack {pack_id.hex()} does not match its name (its content changed)",
            )
        entries = packs[pack_id]
        try:
            if set(parse_pack(repo.sealer, pack_id, data)) != set(entries):
                st.bad_packs.add(pack_id)
                st.add(
                    ProblemKind.PACK_DAMAGED,
                    key,
                    f"pack {pack_id.hex()}: its trailer disagrees with the index",
                )
        except RepositoryError as e:
            st.bad_packs.add(pack_id)
            st.add(ProblemKind.PACK_DAMAGED, key, f"pack {pack_id.hex()}: {e}")
        for entry in entries:
            stored_blob = data[entry.offset : entry.offset + entry.length]
            try:
                repo.sealer.open_blob(
                    entry.blob_type, entry.blob_id, stored_blob, f"pack {pack_id.hex()}"
                )
            except RepositoryError as err:
                loc = repo.index.lookup(entry.blob_id)
                # Only the copy a restore reads matters; another intact copy is fine.
                if loc is None or loc.pack_id == pack_id:
                    st.damaged_blobs.add(entry.blob_id)
                    st.bad_packs.add(pack_id)
                st.add(ProblemKind.BLOB_DAMAGED, entry.blob_id.hex(), str(err))
        reporter.advance(1)
        refresh()


def _trace(
    repo: Repository, st: _State, reporter: MaintenanceReporter, cancel: CancelToken
) -> IntegrityReport:
    """Find the snapshots and paths that lost data reaches."""

    def lost(blob_id: bytes) -> bool:
        if blob_id in st.damaged_blobs or blob_id in st.bad_trees:
            return True
        loc = repo.index.lookup(blob_id)
        return loc is None or loc.pack_id in st.lost_packs

    if not (st.damaged_blobs or st.bad_trees or st.lost_packs):
        return IntegrityReport()
    reporter.phase("trace damage", len(st.snapshots))
    memo: dict[bytes, tuple[str, ...]] = {}

    def damaged_paths(tree_id: bytes) -> tuple[str, ...]:
        """Paths below ``tree_id`` (relative, ``/``-joined) that lost data reaches."""
        cached = memo.get(tree_id)
        if cached is not None:
            return cached
        cancel.check()
        out: list[str] = []
        tree = repo.load_tree(tree_id)
        for node in tree.nodes:
            if node.type == NodeType.DIR and node.subtree is not None:
                if lost(node.subtree):
                    out.append(node.name)
                else:
                    out.extend(f"{node.name}/{p}" for p in damaged_paths(node.subtree))
            elif any(lost(b) for b in node.content):
                out.append(node.name)
        memo[tree_id] = result = tuple(out)
        return result

    affected = []
    for s in st.snapshots:
        paths = ("/",) if lost(s.tree) else tuple("/" + p for p in damaged_paths(s.tree))
        if paths:
            affected.append(AffectedSnapshot(s.id, s.item_id, s.device_id, s.start_ns, paths))
        reporter.advance(1)
    lost_blobs = st.damaged_blobs | st.bad_trees
    return IntegrityReport(
        damaged_packs=tuple(sorted(st.bad_packs)),
        lost_blobs=tuple(sorted(lost_blobs)),
        affected=tuple(affected),
    )
