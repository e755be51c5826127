"""The work of vault maintenance jobs: retention pass, delete snapshots, rebuild
indexes, deep verify, unlock, remeasure. Each opens the vault, runs the engine
operation and reports what it did on the job."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from comet.agent import protection
from comet.agent.browse.refs import resolve_snapshot
from comet.agent.errors import AgentError
from comet.agent.jobs.codes import Severity, Status
from comet.agent.jobs.runner import JobHandle, JobOutcome
from comet.agent.maintenance.check import check
from comet.agent.maintenance.forget import ForgetResult, apply_retention, delete_snapshots
from comet.agent.maintenance.measure import measure
from comet.agent.maintenance.reindex import rebuild_indexes
from comet.agent.maintenance.retention import RetentionRules
from comet.agent.maintenance.unlock import unlock
from comet.agent.repository.repository import Repository
from comet.agent.vaults import VaultSpec, open_repository

REMOVED_LOCK = "removed lock "


class VerifyFailedError(AgentError):
    code = "verify_failed"


def local_tz() -> ZoneInfo:
    """The device's timezone (schedules and retention periods are local)."""
    from comet.agent.server_link import local_timezone

    try:
        return ZoneInfo(local_timezone())
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


class _Reporter:
    """Maintenance progress → job progress and log."""

    def __init__(self, handle: JobHandle) -> None:
        self._handle = handle
        self._done = 0

    def phase(self, name: str, total: int) -> None:
        self._done = 0
        self._handle.info(f"{name}" + (f" ({total})" if total else ""))
        self._handle.update(force=True, items_done=0, items_total=total, current_path=name)

    def advance(self, count: int) -> None:
        self._done += count
        self._handle.update(items_done=self._done)

    def note(self, message: str) -> None:
        self._handle.info(message)


@dataclass(frozen=True)
class VaultJob(abc.ABC):
    vault: VaultSpec
    wrap_key: bytes
    key_dir: Path
    # The Comet Server hosting "Comet Server" vault buckets (the logged-in server).
    server_url: str = field(default="", kw_only=True)
    # An immutable server bucket's delete grant (retention an admin started).
    delete_grant: str = field(default="", kw_only=True, repr=False)

    def __call__(self, handle: JobHandle) -> JobOutcome:
        repo = open_repository(
            self.vault,
            self.wrap_key,
            key_dir=self.key_dir,
            server_url=self.server_url,
            delete_grant=self.delete_grant,
            cancel=handle.cancel,
        )
        try:
            for key, message in sorted(repo.damaged.items()):
                handle.warning(f"{key} is damaged and was set aside: {message}")
            return self.work(repo, handle)
        finally:
            repo.close()

    @abc.abstractmethod
    def work(self, repo: Repository, handle: JobHandle) -> JobOutcome:
        """The job's own part, with the repository open."""


def _report_forget(handle: JobHandle, result: ForgetResult) -> None:
    prune = result.prune
    handle.info(
        f"forgot {len(result.forgotten)} snapshots, kept {len(result.kept)}; prune deleted "
        f"{prune.packs_deleted} packs and repacked {prune.packs_repacked}, freeing "
        f"{prune.bytes_before - prune.bytes_after} bytes"
    )
    handle.job.counters.bytes = prune.bytes_after


def _report_protection(handle: JobHandle, repo: Repository) -> None:
    found = protection.report(repo, datetime.now(UTC))
    if found is None:
        return
    if found.ok:
        until = found.earliest.isoformat(timespec="seconds") if found.earliest else "-"
        handle.info(
            f"immutable vault: all {found.checked} objects of every snapshot are protected"
            f" (until {until} at the earliest)"
        )
        return
    shown = ", ".join(found.unprotected[:20])
    more = f" and {len(found.unprotected) - 20} more" if len(found.unprotected) > 20 else ""
    handle.log(
        Severity.WARNING,
        f"immutable vault: {len(found.unprotected)} of {found.checked} objects that snapshots"
        f" need are no longer protected: {shown}{more}",
    )


@dataclass(frozen=True)
class RetentionJob(VaultJob):
    rules: RetentionRules
    tags: tuple[str, ...] = ()  # judge only snapshots with every one of these

    def work(self, repo: Repository, handle: JobHandle) -> JobOutcome:
        result = apply_retention(
            repo,
            self.rules,
            now=datetime.now(UTC),
            tz=local_tz(),
            tags=self.tags,
            hostname=repo.lock_policy.hostname,
            reporter=_Reporter(handle),
            cancel=handle.cancel,
        )
        _report_forget(handle, result)
        extended = protection.extend(
            repo, self.vault.immutable_seconds, datetime.now(UTC), forgotten=result.forgotten
        )
        if extended:
            handle.info(f"extended the protection of {extended} objects still in use")
        return JobOutcome(Status.SUCCESS)


@dataclass(frozen=True)
class DeleteSnapshotsJob(VaultJob):
    snapshot_ids: tuple[str, ...] = ()  # ids, prefixes, "latest" or "latest~N"
    device_id: str = ""  # whose newest "latest" means

    def work(self, repo: Repository, handle: JobHandle) -> JobOutcome:
        if not self.snapshot_ids:
            raise AgentError("no snapshot to delete was named")
        ids = [resolve_snapshot(repo, s, device_id=self.device_id).id for s in self.snapshot_ids]
        result = delete_snapshots(
            repo,
            ids,
            hostname=repo.lock_policy.hostname,
            reporter=_Reporter(handle),
            cancel=handle.cancel,
        )
        _report_forget(handle, result)
        return JobOutcome(Status.SUCCESS)


@dataclass(frozen=True)
class ReindexJob(VaultJob):
    def work(self, repo: Repository, handle: JobHandle) -> JobOutcome:
        result = rebuild_indexes(
            repo,
            hostname=repo.lock_policy.hostname,
            reporter=_Reporter(handle),
            cancel=handle.cancel,
        )
        handle.info(
            f"indexed {result.blobs_indexed} blobs in {result.packs_indexed} packs; wrote "
            f"{result.index_files_written} index files, removed {result.index_files_deleted}"
        )
        for pack in result.damaged_packs:
            handle.warning(f"pack {pack} is damaged and could not be indexed")
        return JobOutcome(Status.SUCCESS)


@dataclass(frozen=True)
class VerifyJob(VaultJob):
    read_data: bool = False

    def work(self, repo: Repository, handle: JobHandle) -> JobOutcome:
        result = check(
            repo,
            read_data=self.read_data,
            hostname=repo.lock_policy.hostname,
            reporter=_Reporter(handle),
            cancel=handle.cancel,
        )
        handle.job.counters.downloaded_bytes = result.bytes_read
        if self.vault.immutable_seconds:
            _report_protection(handle, repo)
        for problem in result.problems:
            severity = Severity.ERROR if problem in result.errors else Severity.WARNING
            handle.log(severity, problem.message)
        for affected in result.report.affected:
            handle.log(
                Severity.ERROR,
                f"snapshot {affected.snapshot_id.hex()} (item {affected.item_id}) is damaged "
                f"at: {', '.join(affected.paths[:50])}"
                + (f" and {len(affected.paths) - 50} more" if len(affected.paths) > 50 else ""),
                about_file=True,
            )
        if not result.ok:
            raise VerifyFailedError(
                f"verification found {len(result.errors)} problems in "
                f"{len(result.report.affected)} snapshots; see the job log"
            )
        handle.info(
            f"verified {result.snapshots} snapshots, {result.packs} packs"
            + (f", read {result.bytes_read} bytes" if self.read_data else "")
        )
        return JobOutcome(Status.SUCCESS)


@dataclass(frozen=True)
class UnlockJob(VaultJob):
    remove_all: bool = False

    def work(self, repo: Repository, handle: JobHandle) -> JobOutcome:
        result = unlock(repo, remove_all=self.remove_all)
        for info, reason in zip(result.removed, result.reasons, strict=True):
            # One line per lock in a fixed shape: 'comet unlock --json' lists them.
            handle.info(f"{REMOVED_LOCK}{info.key} ({info.describe()}): {reason}")
        for info in result.kept:
            handle.info(f"kept lock {info.key} ({info.describe()}): it may belong to a running job")
        handle.info(f"removed {len(result.removed)} locks, kept {len(result.kept)}")
        return JobOutcome(Status.SUCCESS)


@dataclass(frozen=True)
class MeasureJob(VaultJob):
    def work(self, repo: Repository, handle: JobHandle) -> JobOutcome:
        result = measure(repo, hostname=repo.lock_policy.hostname, reporter=_Reporter(handle))
        handle.job.counters.bytes = result.total_bytes
        handle.info(f"the vault uses {result.total_bytes} bytes ({result.pack_bytes} in packs)")
        return JobOutcome(Status.SUCCESS)
