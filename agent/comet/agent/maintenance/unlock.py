"""``unlock``: remove stale locks (or every lock, when a person says no job runs).

Staleness is judged as acquiring a lock judges it (repository/lock.py): by this host's
process table for its own locks, by the storage's timestamps, or by what this process
watched; never by comparing device clocks. To learn the storage's current time,
unlock writes a lock of its own for a moment (on a vault it cannot write to, only
locks of dead processes on this host and watched locks can be judged, and nothing can
be removed anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

from comet.agent.cancel import CancelToken
from comet.agent.maintenance.reporter import MaintenanceReporter, NullMaintenanceReporter
from comet.agent.repository.lock import (
    WATCH,
    LockInfo,
    LockWatch,
    list_locks,
    probe_storage_time,
    staleness,
)
from comet.agent.repository.repository import Repository


@dataclass(frozen=True)
class RemovedLock:
    info: LockInfo
    reason: str


@dataclass(frozen=True)
class UnlockResult:
    removed: tuple[LockInfo, ...]
    kept: tuple[LockInfo, ...]
    reasons: tuple[str, ...] = ()  # why each removed lock was removed, in order


def unlock(
    repo: Repository,
    *,
    remove_all: bool = False,
    reporter: MaintenanceReporter | None = None,
    cancel: CancelToken | None = None,
    watch: LockWatch = WATCH,
) -> UnlockResult:
    """Delete every stale lock, or with ``remove_all`` every lock. Removing a live
    job's lock is dangerous only for that job: it notices at its next refresh and stops
    before committing, and prune spares young unindexed data (docs/format.md)."""
    reporter = reporter or NullMaintenanceReporter()
    cancel = cancel or CancelToken()
    cancel.check()
    storage_now = None
    if not remove_all:
        storage_now = probe_storage_time(repo.storage, repo.sealer, repo.lock_policy, repo.now_ns)
    removed: list[LockInfo] = []
    reasons: list[str] = []
    kept: list[LockInfo] = []
    for info in list_locks(repo.storage, repo.sealer):
        reason = (
            "removed by force"
            if remove_all
            else staleness(info, policy=repo.lock_policy, storage_now=storage_now, watch=watch)
        )
        if reason:
            repo.storage.delete(info.key)
            removed.append(info)
            reasons.append(reason)
            reporter.note(f"removed the {info.describe()}: {reason}")
        else:
            kept.append(info)
            reporter.note(f"kept the {info.describe()}: it may belong to a running job")
    return UnlockResult(tuple(removed), tuple(kept), tuple(reasons))
