"""``unlock``: remove stale locks (or every lock, when a person says no job runs)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from comet.agent.cancel import CancelToken
from comet.agent.maintenance.reporter import MaintenanceReporter, NullMaintenanceReporter
from comet.agent.repository.lock import LockInfo, list_locks
from comet.agent.repository.repository import Repository


@dataclass(frozen=True)
class UnlockResult:
    removed: tuple[LockInfo, ...]
    kept: tuple[LockInfo, ...]


def unlock(
    repo: Repository,
    *,
    remove_all: bool = False,
    reporter: MaintenanceReporter | None = None,
    cancel: CancelToken | None = None,
) -> UnlockResult:
    """Delete every stale lock (not refreshed for 30 minutes, held by a process of this
    host that is gone, or undecodable), or with
    ``remove_all`` every lock. Removing a live job's lock is dangerous: a prune could
    then delete data that job is writing."""
    reporter = reporter or NullMaintenanceReporter()
    cancel = cancel or CancelToken()
    cancel.check()
    now = repo.now_ns()
    removed: list[LockInfo] = []
    kept: list[LockInfo] = []
    for info in list_locks(repo.storage, repo.sealer):
        if remove_all or info.is_stale(now, hostname=socket.gethostname()):
            repo.storage.delete(info.key)
            removed.append(info)
            reporter.note(f"removed the lock of {info.hostname} (pid {info.pid})")
        else:
            kept.append(info)
    return UnlockResult(tuple(removed), tuple(kept))
