"""The snapshot toolkit behind ``comet diff``, ``dump``, ``stats`` and
``retention --dry-run``: each opens the vault, names snapshots the way people do
(``browse.refs``) and calls the engine. Takes and returns domain values; the local API
converts at its edge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from comet.agent.browse.diff import DiffEntry, DiffTotals, diff_snapshots
from comet.agent.browse.refs import has_tags, resolve_snapshot, select_snapshots
from comet.agent.cancel import CancelToken
from comet.agent.convert import retention_rules
from comet.agent.jobs.maintenance_job import local_tz
from comet.agent.maintenance.retention import RetentionVerdict, explain_retention
from comet.agent.maintenance.stats import SnapshotStats, snapshot_stats
from comet.agent.repository.repository import Repository
from comet.agent.repository.snapshot import Snapshot
from comet.v1 import common_pb2

if TYPE_CHECKING:
    from comet.agent.browse.dump import DumpKind
    from comet.agent.operations import Operations
    from comet.agent.restore.tar import ByteSink


@dataclass(frozen=True)
class SnapshotFilter:
    """How ``latest`` and listings are narrowed: an item (id or name) and tags."""

    item: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class DiffResult:
    old: Snapshot
    new: Snapshot
    entries: tuple[DiffEntry, ...]
    totals: DiffTotals


@dataclass(frozen=True)
class StatsResult:
    stats: SnapshotStats
    snapshot_ids: tuple[str, ...]
    item_names: dict[str, str]


@dataclass(frozen=True)
class RetentionPreview:
    verdicts: tuple[RetentionVerdict, ...]
    item_names: dict[str, str]


class SnapshotTools:
    def __init__(self, ops: Operations) -> None:
        self._ops = ops

    def _item_id(self, profile: common_pb2.Profile, item: str) -> str:
        return self._ops._item_id_or_raw(profile, item) if item else ""

    def _resolver(
        self, item_id: str, which: SnapshotFilter
    ) -> Callable[[Repository, str, str], Snapshot]:
        def resolve(repo: Repository, ref: str, device_id: str) -> Snapshot:
            return resolve_snapshot(
                repo,
                ref,
                item_id=item_id,
                tags=which.tags,
                device_id=device_id,
                item_label=which.item,
            )

        return resolve

    async def diff(
        self, vault: str, old_ref: str, new_ref: str, which: SnapshotFilter
    ) -> DiffResult:
        profile = await self._ops.profile.fetch()
        resolve = self._resolver(self._item_id(profile, which.item), which)

        def read(repo: Repository, device_id: str) -> DiffResult:
            old = resolve(repo, old_ref, device_id)
            new = resolve(repo, new_ref, device_id)
            totals = DiffTotals()
            entries = tuple(diff_snapshots(repo, old, new, totals))
            return DiffResult(old, new, entries, totals)

        return await self._ops.read_vault(vault, read, profile=profile)

    async def dump_kind(
        self, vault: str, ref: str, path: str, which: SnapshotFilter
    ) -> tuple[Snapshot, DumpKind]:
        """The snapshot and what a dump of ``path`` writes: checked before streaming
        starts, so a wrong path is an error rather than an empty stream."""
        profile = await self._ops.profile.fetch()
        resolve = self._resolver(self._item_id(profile, which.item), which)

        from comet.agent.browse.dump import dump_kind  # the tar writer: only for a dump

        def read(repo: Repository, device_id: str) -> tuple[Snapshot, DumpKind]:
            snapshot = resolve(repo, ref, device_id)
            return snapshot, dump_kind(repo, snapshot, path)

        return await self._ops.read_vault(vault, read, profile=profile)

    async def dump(
        self, vault: str, snapshot_id: str, path: str, out: ByteSink, cancel: CancelToken
    ) -> None:
        """Write ``path`` of the snapshot to ``out`` on a worker thread."""
        from comet.agent.browse.dump import dump

        def read(repo: Repository, device_id: str) -> None:
            snapshot = repo.load_snapshot(snapshot_id)
            dump(repo, snapshot, path, out, cancel=cancel, hostname=repo.lock_policy.hostname)

        await self._ops.read_vault(vault, read)

    async def stats(
        self, vault: str, ref: str, which: SnapshotFilter, *, all_devices: bool
    ) -> StatsResult:
        """One snapshot's stats, or those of every snapshot ``which`` lets through
        (this device's only, unless ``all_devices`` or an item is given)."""
        profile = await self._ops.profile.fetch()
        item_id = self._item_id(profile, which.item)
        resolve = self._resolver(item_id, which)

        def read(repo: Repository, device_id: str) -> StatsResult:
            if ref:
                chosen = [resolve(repo, ref, device_id)]
            else:
                chosen = select_snapshots(repo.list_snapshots(), item_id=item_id, tags=which.tags)
                if not all_devices and not item_id:
                    chosen = [s for s in chosen if s.device_id == device_id]
            repo.refresh_index()
            return StatsResult(
                snapshot_stats(repo, chosen),
                tuple(s.id.hex() for s in chosen),
                {i.item_id: i.name for i in profile.items},
            )

        return await self._ops.read_vault(vault, read, profile=profile)

    async def plan_retention(self, vault: str, tags: tuple[str, ...]) -> RetentionPreview:
        """What a retention pass would forget now, and why it keeps the rest; only
        snapshots with every one of ``tags`` are judged."""
        profile = await self._ops.profile.fetch()
        vault_id = self._ops._vault(profile, vault).vault_id
        rules = retention_rules(profile, vault_id)

        def read(repo: Repository, device_id: str) -> tuple[RetentionVerdict, ...]:
            judged = [s for s in repo.list_snapshots() if has_tags(s, tags)]
            return tuple(explain_retention(judged, rules, now=datetime.now(UTC), tz=local_tz()))

        verdicts = await self._ops.read_vault(vault, read, profile=profile)
        return RetentionPreview(verdicts, {i.item_id: i.name for i in profile.items})
