"""Forget and prune on real repositories: bytes freed, repacking, locks, crash safety."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from comet.agent.cancel import CancelToken
from comet.agent.errors import (
    CancelledError,
    LockedError,
    PruneRefusedError,
    SnapshotNotFoundError,
)
from comet.agent.maintenance import (
    RangeType,
    RetentionMode,
    RetentionPolicy,
    RetentionRange,
    RetentionRules,
    apply_retention,
    check,
    delete_snapshots,
    prune,
)
from comet.agent.repository import Repository
from comet.agent.repository.lock import PRUNE_GRACE_NS, STALE_AFTER_NS, RepositoryLock
from comet.agent.repository.pack import pack_key
from comet.agent.storage.faulty import Fault, FaultPlan, FaultRule, FaultyStorage, Operation
from comet.agent.storage.local import LocalStorage
from comet.agent.storage.memory import MemoryStorage
from tests.agent.maintenance.conftest import (
    FILE_SIZE,
    VAULT_KEY,
    Source,
    clone,
    prefix_bytes,
)


def _two_snapshots(repo: Repository, source: Source) -> tuple[bytes, bytes]:
    """s1 holds a..d; s2 holds a, b and a new e. The data pack of s1 is then half used
    once s1 is gone (c and d are unused)."""
    for name in "abcd":
        source.write(name)
    s1 = source.backup(repo)
    source.remove("c")
    source.remove("d")
    source.write("e")
    s2 = source.backup(repo)
    return s1, s2


def test_delete_snapshot_shrinks_vault_and_rest_restores(
    tmp_path: Path, repo: Repository, storage: MemoryStorage, source: Source
) -> None:
    s1, s2 = _two_snapshots(repo, source)
    before = prefix_bytes(storage, "")
    result = delete_snapshots(repo, [s1.hex()[:16]])
    assert result.forgotten == (s1,) and result.kept == (s2,)
    assert result.prune.packs_repacked >= 1
    freed = before - prefix_bytes(storage, "")
    # c and d (random, incompressible) are gone, minus nothing else of s2's.
    assert freed >= 2 * FILE_SIZE
    assert result.prune.bytes_freed >= 2 * FILE_SIZE
    source.assert_restores(repo, s2, tmp_path / "out")
    fresh = Repository.open(storage, VAULT_KEY)
    source.assert_restores(fresh, s2, tmp_path / "out2")
    assert check(fresh, read_data=True).problems == ()


def test_delete_unknown_snapshot_deletes_nothing(repo: Repository, source: Source) -> None:
    source.write("a")
    s1 = source.backup(repo)
    with pytest.raises(SnapshotNotFoundError):
        delete_snapshots(repo, [s1, "00" * 32])
    assert [s.id for s in repo.list_snapshots()] == [s1]


def test_repack_is_what_frees_a_half_used_pack(
    repo: Repository, storage: MemoryStorage, source: Source
) -> None:
    s1, _ = _two_snapshots(repo, source)
    storage.delete(f"snapshots/{s1.hex()}")
    twin = clone(storage)
    no_repack = prune(Repository.open(twin, VAULT_KEY), repack_below=0.0)
    assert no_repack.packs_repacked == 0
    assert no_repack.bytes_freed < FILE_SIZE  # only tree packs and index files changed
    result = prune(repo)
    assert result.packs_repacked >= 1 and result.packs_written >= 1
    assert result.bytes_freed >= 2 * FILE_SIZE
    assert prefix_bytes(storage, "data/") <= prefix_bytes(twin, "data/") - 2 * FILE_SIZE
    # a second prune finds nothing to do
    again = prune(repo)
    assert again.packs_deleted == again.packs_repacked == 0
    assert again.bytes_freed <= 1024  # the index file is rewritten (new nonce, same size)


def test_apply_retention_forgets_and_prunes(
    tmp_path: Path, repo: Repository, storage: MemoryStorage, source: Source
) -> None:
    s1, s2 = _two_snapshots(repo, source)
    keep_last = RetentionPolicy(
        RetentionMode.DELETE_EXCEPT, (RetentionRange(RangeType.MOST_RECENT_JOBS, jobs=1),)
    )
    now = datetime.now(UTC) + timedelta(minutes=1)
    everything = apply_retention(
        repo, RetentionRules(RetentionPolicy()), now=now, tz=UTC
    )  # mode 801 by default
    assert everything.forgotten == () and len(everything.kept) == 2
    result = apply_retention(repo, RetentionRules(keep_last), now=now, tz=UTC)
    assert result.forgotten == (s1,) and result.kept == (s2,)
    assert result.prune.bytes_freed >= 2 * FILE_SIZE
    source.assert_restores(repo, s2, tmp_path / "out")


def test_prune_refuses_while_locked_unless_stale(repo: Repository, source: Source) -> None:
    source.write("a")
    source.backup(repo)
    with repo.lock(hostname="busy"), pytest.raises(LockedError):
        prune(repo)
    # A holder on another host whose wall clock is an hour behind: its fresh lock is
    # live whatever its clock says.
    behind = time.time_ns() - 3600 * 10**9
    other = RepositoryLock.acquire(
        repo.storage, repo.sealer, exclusive=True, hostname="other", now_ns=lambda: behind
    )
    with pytest.raises(LockedError, match="host other"):
        prune(repo)
    # It stops refreshing (the process died); by the storage's clock it goes stale.
    other._stop.set()
    assert isinstance(repo.storage, MemoryStorage)
    repo.storage.clock = lambda: time.time_ns() + STALE_AFTER_NS + 10**9
    assert prune(repo).snapshots == 1
    assert other.info.key in {o.key for o in repo.storage.list("locks/")}  # left for unlock


def test_prune_refuses_when_a_used_blob_is_unindexed(
    repo: Repository, storage: MemoryStorage, source: Source
) -> None:
    source.write("a")
    source.backup(repo)
    for obj in list(storage.list("index/")):
        storage.delete(obj.key)
    packs = {o.key for o in storage.list("data/")}
    with pytest.raises(PruneRefusedError):
        prune(Repository.open(storage, VAULT_KEY))
    assert {o.key for o in storage.list("data/")} == packs


@pytest.mark.parametrize(
    ("op", "prefix"),
    [("put", "data/"), ("put", "index/"), ("delete", "index/"), ("delete", "data/")],
    ids=["store-new-pack", "store-index", "delete-old-index", "delete-old-pack"],
)
def test_crash_during_prune_leaves_vault_restorable(
    tmp_path: Path,
    repo: Repository,
    storage: MemoryStorage,
    source: Source,
    op: Operation,
    prefix: str,
) -> None:
    s1, s2 = _two_snapshots(repo, source)
    storage.delete(f"snapshots/{s1.hex()}")
    # Fail the second matching call, so the step is interrupted midway where the step
    # has more than one call (several packs/index files); else its only call.
    calls = 2 if (op, prefix) in (("delete", "data/"),) else 1
    rule = FaultRule(op, Fault.ERROR, prefix=prefix, calls={calls})
    faulty = FaultyStorage(storage, FaultPlan((rule,)))
    with pytest.raises(Exception, match="injected fault"):
        prune(Repository.open(faulty, VAULT_KEY))
    assert faulty.injected, "the fault was never reached"
    assert not list(storage.list("locks/"))  # the lock is released on failure

    survivor = Repository.open(storage, VAULT_KEY)
    source.assert_restores(survivor, s2, tmp_path / "after-crash")
    assert check(survivor).ok

    result = prune(survivor)
    assert result.snapshots == 1
    # Unindexed leftovers wait out the grace period (by the storage's clock), then go.
    storage.clock = lambda: time.time_ns() + PRUNE_GRACE_NS + 10**9
    result = prune(survivor)
    report = check(survivor, read_data=True)
    assert report.problems == ()  # no leftovers: every pack is indexed and used
    source.assert_restores(survivor, s2, tmp_path / "after-rerun")


class CancelAt:
    """A reporter that cancels the job when a given phase begins."""

    def __init__(self, token: CancelToken, phase: str) -> None:
        self.token = token
        self.at = phase
        self.phases: list[str] = []

    def phase(self, name: str, total: int) -> None:
        self.phases.append(name)
        if name == self.at:
            self.token.cancel()

    def advance(self, count: int) -> None:
        pass

    def note(self, message: str) -> None:
        pass


def test_cancelled_prune_deletes_nothing(
    tmp_path: Path, repo: Repository, storage: MemoryStorage, source: Source
) -> None:
    s1, s2 = _two_snapshots(repo, source)
    storage.delete(f"snapshots/{s1.hex()}")
    before = {o.key for o in storage.list("") if not o.key.startswith("locks/")}
    token = CancelToken()
    with pytest.raises(CancelledError):
        prune(repo, reporter=CancelAt(token, "repack"), cancel=token)
    assert before == {o.key for o in storage.list("")}
    source.assert_restores(repo, s2, tmp_path / "out")
    reporter = CancelAt(CancelToken(), "")
    prune(repo, reporter=reporter)
    assert reporter.phases[:2] == ["mark", "repack"]


def test_unindexed_packs_and_temp_files_wait_out_the_grace_by_storage_time(
    tmp_path: Path, source: Source
) -> None:
    """A live writer's packs are unindexed until its index is stored: prune spares
    them for the grace period, measured by the storage's timestamps (file mtimes here),
    however wrong the pruning device's clock is."""
    vault = tmp_path / "vault"
    storage = LocalStorage(vault)
    repo = Repository.init(storage, VAULT_KEY, now_ns=lambda: time.time_ns() - 86400 * 10**9)
    source.write("a")
    s1 = source.backup(repo)
    young, old = os.urandom(32), os.urandom(32)
    for pack_id in (young, old):
        storage.put(pack_key(pack_id), os.urandom(1000))
    tmp = vault / "data" / "ff" / f"{'f' * 64}.comet-tmp~0123456789abcdef"
    tmp.parent.mkdir(exist_ok=True)
    tmp.write_bytes(b"an upload cut short")
    day_ago = time.time_ns() - PRUNE_GRACE_NS - 60 * 10**9
    for path in (vault / pack_key(old), tmp):
        os.utime(path, ns=(day_ago, day_ago))

    result = prune(repo)
    assert result.packs_deleted == 1
    assert not list(storage.list(pack_key(old)))
    assert [o.key for o in storage.list(pack_key(young))] == [pack_key(young)]
    assert not tmp.exists()
    source.assert_restores(repo, s1, tmp_path / "out")
