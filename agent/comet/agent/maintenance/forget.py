"""Forgetting snapshots: a retention pass, or deleting chosen snapshots; both then prune.

Both hold the exclusive lock from the first deletion to the end of the prune. Deleting
a snapshot object is the commit point of forgetting it; a crash after it leaves data
that the next prune removes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from comet.agent.cancel import CancelToken
from comet.agent.errors import SnapshotNotFoundError
from comet.agent.maintenance.prune import REPACK_BELOW, PruneResult, prune_locked
from comet.agent.maintenance.reporter import MaintenanceReporter, NullMaintenanceReporter
from comet.agent.maintenance.retention import RetentionRules, plan_retention
from comet.agent.repository.repository import Repository


@dataclass(frozen=True)
class ForgetResult:
    """Snapshots forgotten and kept (ids), and the prune that followed."""

    forgotten: tuple[bytes, ...]
    kept: tuple[bytes, ...]
    prune: PruneResult


def apply_retention(
    repo: Repository,
    rules: RetentionRules,
    *,
    now: datetime,
    tz: tzinfo,
    repack_below: float = REPACK_BELOW,
    hostname: str = "",
    reporter: MaintenanceReporter | None = None,
    cancel: CancelToken | None = None,
    tags: Collection[str] = (),
) -> ForgetResult:
    """Forget every snapshot ``rules`` do not keep (see ``plan_retention``), then prune.
    With ``tags``, only snapshots carrying every one of them are judged; the rest stay.

    Raises RetentionPolicyError before deleting anything if a policy is unusable, and
    what ``prune`` raises."""
    reporter = reporter or NullMaintenanceReporter()
    cancel = cancel or CancelToken()
    cancel.check()
    with repo.lock(exclusive=True, hostname=hostname, purpose="retention") as lock:
        judged = [s for s in repo.list_snapshots() if set(tags) <= set(s.tags)]
        plan = plan_retention(judged, rules, now=now, tz=tz)
        lock.check()
        reporter.phase("forget", len(plan.forget))
        for snapshot in plan.forget:
            cancel.check()
            repo.storage.delete(f"snapshots/{snapshot.id.hex()}")
            reporter.advance(1)
        if plan.forget:
            reporter.note(f"forgot {len(plan.forget)} snapshots, kept {len(plan.keep)}")
        result = prune_locked(
            repo, lock, repack_below=repack_below, reporter=reporter, cancel=cancel
        )
    return ForgetResult(
        forgotten=tuple(s.id for s in plan.forget),
        kept=tuple(s.id for s in plan.keep),
        prune=result,
    )


def delete_snapshots(
    repo: Repository,
    snapshot_ids: Iterable[bytes | str],
    *,
    repack_below: float = REPACK_BELOW,
    hostname: str = "",
    reporter: MaintenanceReporter | None = None,
    cancel: CancelToken | None = None,
) -> ForgetResult:
    """Delete the given snapshots (ids as bytes, hex, or unique hex prefixes), then
    prune at once. Raises SnapshotNotFoundError, before deleting anything, if any id
    matches no snapshot; then what ``prune`` raises."""
    reporter = reporter or NullMaintenanceReporter()
    cancel = cancel or CancelToken()
    cancel.check()
    with repo.lock(exclusive=True, hostname=hostname, purpose="delete snapshots") as lock:
        targets = [repo.load_snapshot(i).id for i in snapshot_ids]
        if not targets:
            raise SnapshotNotFoundError("no snapshot was named for deletion")
        lock.check()
        reporter.phase("forget", len(targets))
        for snapshot_id in dict.fromkeys(targets):
            cancel.check()
            repo.storage.delete(f"snapshots/{snapshot_id.hex()}")
            reporter.advance(1)
        result = prune_locked(
            repo, lock, repack_below=repack_below, reporter=reporter, cancel=cancel
        )
    forgotten = tuple(dict.fromkeys(targets))
    kept = tuple(o.key.rsplit("/", 1)[-1] for o in repo.storage.list("snapshots/"))
    return ForgetResult(forgotten, tuple(bytes.fromhex(k) for k in kept), result)
