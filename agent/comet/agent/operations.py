"""What the agent does for its users (the local API) and for admins (remote commands):
manage the profile, start and watch jobs, list snapshots. Takes and returns domain
values; the local API and the live connection convert at their edges."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from comet.agent import immutable
from comet.agent.batch_stream import batches_from_thread
from comet.agent.browse import Entry, EntryColumns, FindQuery, find, list_dir, list_tree
from comet.agent.browse.listing import snapshot_path
from comet.agent.browse.refs import is_latest, resolve_snapshot, select_snapshots
from comet.agent.convert import (
    item_from_proto,
    retention_rules,
    vault_from_proto,
)
from comet.agent.errors import AgentError, LocalPathError
from comet.agent.import_objects import ImportObjects, check_import_allowed, plan_objects
from comet.agent.importers import DetectResult, ImportPlan, ImportSource, plan_import
from comet.agent.importers.scan import detect_everywhere
from comet.agent.items import ItemSpec
from comet.agent.jobs.backup_job import BackupJob
from comet.agent.jobs.codes import Classification
from comet.agent.jobs.import_job import ImportJob, new_id
from comet.agent.jobs.maintenance_job import (
    DeleteSnapshotsJob,
    MeasureJob,
    ReindexJob,
    RetentionJob,
    UnlockJob,
    VaultJob,
    VerifyJob,
)
from comet.agent.jobs.record import JobRecord, LogEntry
from comet.agent.jobs.restore_job import RestoreJob
from comet.agent.jobs.runner import JobHandle, JobRunner
from comet.agent.jobs.store import JobQuery, JobStore
from comet.agent.jobs.targets import TargetSpec
from comet.agent.local_paths import check_folder, missing_paths
from comet.agent.mount.options import (
    DEFAULT_CACHE_BYTES,
    MountError,
    MountOptions,
    MountPlan,
    MountRequest,
)
from comet.agent.profile_sync import NotLoggedInError, ProfileSync
from comet.agent.repository.format import BlobType
from comet.agent.repository.repository import Repository
from comet.agent.snapshot_info import SnapshotInfo, snapshot_info
from comet.agent.snapshot_tools import SnapshotTools
from comet.agent.state import AgentState, LoginState
from comet.agent.vaults import (
    CometSettings,
    VaultSpec,
    find_vault_key,
    init_repository,
    new_vault_key,
    open_repository,
    unwrap_vault_key,
    wrap_vault_key,
)
from comet.v1 import common_pb2

T = TypeVar("T")

# A streamed recursive listing: entries per batch, and batches the walk may run ahead
# of its reader (what the agent holds of a listing however big the snapshot).
LIST_BATCH = 1000
LIST_AHEAD = 4


def check_tags(tags: tuple[str, ...]) -> None:
    """Tags are short words: no commas (lists are comma-separated), no spaces."""
    for tag in tags:
        if not tag or len(tag) > 64 or any(c in tag for c in ", \t\n"):
            raise AgentError(
                f"{tag!r} is not a tag: use 1 to 64 characters without spaces or commas"
            )


class NotFoundError(AgentError):
    code = "not_found"


@dataclass(frozen=True)
class RestoreRequest:
    vault: str
    snapshot: str  # an id, an id prefix, or "latest" (with item)
    item: str = ""
    paths: tuple[str, ...] = ()
    allow_partial: bool = False


class Operations:
    def __init__(
        self,
        state: AgentState,
        jobs: JobStore,
        runner: JobRunner,
        profile: ProfileSync,
        key_dir: Path,
    ) -> None:
        self.state = state
        self.jobs = jobs
        self.runner = runner
        self.profile = profile
        self.key_dir = key_dir
        self.tools = SnapshotTools(self)

    # ------------------------------------------------------------ profile

    def _login(self) -> LoginState:
        login = self.state.load_login()
        if not login.logged_in:
            raise NotLoggedInError("this agent is not logged in: run 'comet login' first")
        return login

    async def attach_vault(self, vault: common_pb2.StorageVault) -> common_pb2.StorageVault:
        """Adopt an existing repository: it must open with one of the account's vault
        keys, which the new vault then shares."""
        if vault.WhichOneof("settings") == "comet":
            raise AgentError(
                "a Comet Server vault cannot be attached: its bucket is already in the"
                " account's profile, or belongs to another account"
            )
        return await self.add_vault(vault, attach=True)

    @staticmethod
    def _account_vault_keys(profile: common_pb2.Profile, wrap_key: bytes) -> list[bytes]:
        keys: list[bytes] = []
        for msg in profile.vaults:
            if not msg.wrapped_vault_key:
                continue
            try:
                key = unwrap_vault_key(vault_from_proto(msg), wrap_key)
            except AgentError:
                continue  # wrapped under another password: no use here
            if key not in keys:
                keys.append(key)
        return keys

    async def add_vault(
        self, vault: common_pb2.StorageVault, *, attach: bool = False
    ) -> common_pb2.StorageVault:
        login = self._login()
        vault.vault_id = vault.vault_id or str(uuid.uuid4())
        if not vault.name:
            raise AgentError("a Storage Vault needs a name")
        if vault.WhichOneof("settings") == "sftp" and not vault.sftp.host_key:
            # open_storage refuses it too, but its advice is for vaults already saved.
            raise AgentError(
                f"SFTP vault {vault.name!r} has no pinned host key: ask the agent for the key"
                f" {vault.sftp.host}:{vault.sftp.port or 22} presents (SftpHostKey), confirm"
                " its fingerprint and send it as the vault's host_key ('comet vault add'"
                " and the app do this)"
            )
        current = await self.profile.fetch()
        immutable.check_new_vault(vault, current.policy.force_immutable_days)
        if vault.WhichOneof("settings") == "comet" and not vault.comet.bucket_id:
            bucket_id, bucket_key = await self.profile.create_bucket(
                quota_bytes=vault.quota_bytes,
                immutable_seconds=vault_from_proto(vault).immutable_seconds,
            )
            vault.comet.bucket_id, vault.comet.bucket_key = bucket_id, bucket_key
        if vault.WhichOneof("settings") == "local":
            check_folder(Path(vault.local.path), option="--path")
        spec = vault_from_proto(vault)
        await asyncio.to_thread(immutable.check_storage, spec, key_dir=self.key_dir)
        if attach:
            vault_key = await asyncio.to_thread(
                find_vault_key,
                spec,
                self._account_vault_keys(current, login.wrap_key),
                key_dir=self.key_dir,
                server_url=login.server,
            )
        else:
            vault_key = new_vault_key()
            # The repository is created first: a vault that cannot be reached fails
            # here, before it is saved in the profile.
            await asyncio.to_thread(
                init_repository, spec, vault_key, key_dir=self.key_dir, server_url=login.server
            )
        vault.wrapped_vault_key = wrap_vault_key(login.wrap_key, vault_key)
        vault.created_at.FromNanoseconds(time.time_ns())
        saved = await self.profile.edit(lambda p: p.vaults.append(vault))
        return next(v for v in saved.vaults if v.vault_id == vault.vault_id)

    async def add_item(
        self, item: common_pb2.ProtectedItem, *, allow_missing: bool = False
    ) -> common_pb2.ProtectedItem:
        login = self._login()
        item.item_id = item.item_id or str(uuid.uuid4())
        item.owner_device_id = login.device_id
        if not item.name:
            raise AgentError("a Protected Item needs a name")
        if item.type == common_pb2.ITEM_TYPE_FILES and not item.includes:
            raise AgentError("a Files and Folders item needs at least one --include path")
        missing = missing_paths(item.includes) if item.type == common_pb2.ITEM_TYPE_FILES else []
        if missing and not allow_missing:
            raise LocalPathError(
                f"{', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not exist on"
                " this device; check the path, or add it anyway with --allow-missing (it is"
                " backed up once it exists)",
                errno_name="ENOENT",
            )
        if item.type == common_pb2.ITEM_TYPE_PROGRAM and not item.program_command:
            raise AgentError("a Program Output item needs a --command")
        item.created_at.FromNanoseconds(time.time_ns())
        saved = await self.profile.edit(lambda p: p.items.append(item))
        return next(i for i in saved.items if i.item_id == item.item_id)

    async def add_schedule(self, schedule: common_pb2.Schedule) -> common_pb2.Schedule:
        self._login()
        profile = await self.profile.fetch()
        schedule.item_id = self._item(profile, schedule.item_id).item_id
        schedule.vault_id = self._vault(profile, schedule.vault_id).vault_id
        schedule.schedule_id = schedule.schedule_id or str(uuid.uuid4())
        schedule.enabled = True
        saved = await self.profile.edit(lambda p: p.schedules.append(schedule))
        return next(s for s in saved.schedules if s.schedule_id == schedule.schedule_id)

    async def _key_new_vault(self, vault: VaultSpec) -> VaultSpec:
        """The first device to use a vault saved without a key (an imported one, say)
        creates its repository and key, and stores the key wrapped in the profile."""
        login = self._login()
        vault_key = new_vault_key()
        await asyncio.to_thread(
            init_repository, vault, vault_key, key_dir=self.key_dir, server_url=login.server
        )
        wrapped = wrap_vault_key(login.wrap_key, vault_key)

        def store(profile: common_pb2.Profile) -> None:
            for msg in profile.vaults:
                if msg.vault_id == vault.vault_id and not msg.wrapped_vault_key:
                    msg.wrapped_vault_key = wrapped

        saved = await self.profile.edit(store)
        return self._vault(saved, vault.vault_id, device_id=login.device_id)

    @staticmethod
    def _vault(profile: common_pb2.Profile, ref: str, *, device_id: str = "") -> VaultSpec:
        for vault in profile.vaults:
            if ref in (vault.vault_id, vault.name):
                return vault_from_proto(vault, device_id=device_id)
        raise NotFoundError(f"no Storage Vault {ref!r} in this account (see 'comet vault list')")

    @staticmethod
    def _item(profile: common_pb2.Profile, ref: str) -> ItemSpec:
        for item in profile.items:
            if ref in (item.item_id, item.name):
                return item_from_proto(item)
        raise NotFoundError(f"no Protected Item {ref!r} in this account (see 'comet item list')")

    # ------------------------------------------------------------ jobs

    async def start_backup(
        self,
        item_ref: str,
        vault_ref: str,
        *,
        skip_if_running: bool = False,
        stop_after_seconds: float = 0,
        bandwidth_bps: int = 0,
        tags: tuple[str, ...] = (),
    ) -> JobRecord:
        login = self._login()
        check_tags(tags)
        tags = tuple(sorted(set(tags)))
        profile = await self.profile.fetch()
        item = self._item(profile, item_ref)
        vault = self._vault(profile, vault_ref, device_id=login.device_id)
        if item.owner_device_id and item.owner_device_id != login.device_id:
            raise AgentError(
                f"Protected Item {item.name!r} belongs to another device; only its own "
                "device backs it up"
            )
        if not vault.wrapped_vault_key:
            vault = await self._key_new_vault(vault)
        work = BackupJob(
            item,
            vault,
            login.device_id,
            login.wrap_key,
            self.key_dir,
            server_url=login.server,
            bandwidth_bps=bandwidth_bps,
            tags=tags,
        )
        return self.runner.start(
            Classification.BACKUP,
            work,
            item_id=item.item_id,
            vault_id=vault.vault_id,
            skip_if_running=skip_if_running,
            stop_after_seconds=stop_after_seconds,
        )

    async def start_restore(self, request: RestoreRequest, target: TargetSpec) -> JobRecord:
        target.check()
        login = self._login()
        profile = await self.profile.fetch()
        vault = self._vault(profile, request.vault)
        snapshot_id, item_id = request.snapshot, ""
        if is_latest(request.snapshot):
            item_id = self._item_id_or_raw(profile, request.item) if request.item else ""
            chosen = await self.read_vault(
                vault.vault_id,
                lambda repo, device_id: resolve_snapshot(
                    repo,
                    request.snapshot,
                    item_id=item_id,
                    device_id=device_id,
                    item_label=request.item,
                ),
                profile=profile,
            )
            snapshot_id, item_id = chosen.id.hex(), chosen.item_id
        work = RestoreJob(
            vault,
            snapshot_id,
            target,
            login.wrap_key,
            self.key_dir,
            request.paths,
            request.allow_partial,
            server_url=login.server,
        )
        return self.runner.start(
            Classification.RESTORE, work, item_id=item_id, vault_id=vault.vault_id
        )

    async def start_vault_job(
        self,
        classification: Classification,
        vault_ref: str,
        *,
        snapshot_ids: tuple[str, ...] = (),
        read_data: bool = False,
        remove_all_locks: bool = False,
        delete_grant: str = "",
        password: str = "",
        scheduled: bool = False,
        tags: tuple[str, ...] = (),
    ) -> JobRecord:
        """``scheduled``: a retention the schedule started, which gets an immutable
        server vault's delete grant from the policy's retention window."""
        login = self._login()
        profile = await self.profile.fetch()
        vault = self._vault(profile, vault_ref)
        settings = vault.settings
        if isinstance(settings, CometSettings) and vault.immutable_seconds:
            if password:
                delete_grant = await self.profile.request_delete_grant(settings.bucket_id, password)
            elif scheduled and not delete_grant:
                delete_grant = await self.profile.request_scheduled_delete_grant(settings.bucket_id)
        base = (vault, login.wrap_key, self.key_dir)
        work: VaultJob
        if classification is Classification.RETENTION:
            work = RetentionJob(*base, retention_rules(profile, vault.vault_id), tags=tags)
        elif classification is Classification.DELETE_SNAPSHOT:
            if profile.policy.flags.prevent_delete_snapshot:
                raise AgentError("the account's policy does not allow deleting snapshots")
            work = DeleteSnapshotsJob(*base, snapshot_ids, device_id=login.device_id)
        elif classification is Classification.REINDEX:
            work = ReindexJob(*base)
        elif classification is Classification.DEEP_VERIFY:
            work = VerifyJob(*base, read_data)
        elif classification is Classification.UNLOCK:
            work = UnlockJob(*base, remove_all_locks)
        elif classification is Classification.REMEASURE:
            work = MeasureJob(*base)
        else:
            raise AgentError(f"{classification.name.lower()} is not a vault job")
        work = dataclasses.replace(work, server_url=login.server, delete_grant=delete_grant)
        return self.runner.start(classification, work, vault_id=vault.vault_id)

    @staticmethod
    def _item_id_or_raw(profile: common_pb2.Profile, ref: str) -> str:
        for item in profile.items:
            if ref in (item.item_id, item.name):
                return item.item_id
        return ref  # an unknown (deleted) item's id

    async def job_filter_ids(self, item: str, vault: str, device: str) -> tuple[str, str, str]:
        """History filters as ids: an item, vault or device of this account may be
        given by name; anything else is taken as an id (a deleted item's, say)."""
        if not (item or vault or device):
            return item, vault, device
        profile = await self.profile.fetch()
        item_id = self._item_id_or_raw(profile, item) if item else ""
        vault_id = next(
            (v.vault_id for v in profile.vaults if vault in (v.vault_id, v.name)), vault
        )
        device_id = device
        if device and device != self._login().device_id:
            devices = await self.profile.devices()
            if not any(d.device_id == device for d in devices):
                named = [d.device_id for d in devices if d.name == device]
                if len(named) > 1:
                    raise AgentError(
                        f"{len(named)} devices of this account are named {device!r};"
                        " give the device id"
                    )
                device_id = named[0] if named else device
        return item_id, vault_id, device_id

    def history(self, query: JobQuery) -> list[JobRecord]:
        return self.jobs.query(query)

    def job_log(self, job_id: str) -> tuple[JobRecord, list[LogEntry]]:
        job = self.runner.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r} on this device")
        return job, self.jobs.log(job_id)

    # ------------------------------------------------------------ import

    def import_sources(self) -> DetectResult:
        return detect_everywhere()

    async def start_import(self, source_id: str) -> JobRecord:
        source = await self._import_source(source_id)
        work = ImportJob(source, self._apply_import, asyncio.get_running_loop())
        return self.runner.start(Classification.IMPORT, work)

    async def preview_import(self, source_id: str) -> tuple[ImportPlan, ImportObjects]:
        """What importing ``source_id`` would add to the profile; nothing is written."""
        source = await self._import_source(source_id)
        plan = await asyncio.to_thread(plan_import, source)
        device_id = self._login().device_id
        counter = iter(range(1, 1_000_000))
        return plan, plan_objects(plan, device_id=device_id, new_id=lambda: f"new-{next(counter)}")

    async def _import_source(self, source_id: str) -> ImportSource:
        self._login()
        check_import_allowed(self.profile.cached())
        found = [s for s in detect_everywhere().sources if s.source_id == source_id]
        if not found:
            raise NotFoundError(f"no import source {source_id!r} (see 'comet import --list')")
        return found[0]

    async def _apply_import(self, plan: ImportPlan, handle: JobHandle) -> None:
        login = self._login()
        made = plan_objects(plan, device_id=login.device_id, new_id=new_id)
        vaults, items, schedules = made.vaults, made.items, made.schedules
        for vault_plan, msg in zip(plan.vaults, vaults, strict=True):
            if vault_plan.missing_secrets:
                handle.warning(
                    f"Storage Vault {msg.name!r} needs {', '.join(vault_plan.missing_secrets)} "
                    "before it can be used; its key is created at its first backup"
                )
            else:
                spec = vault_plan.to_spec(vault_id=msg.vault_id)
                vault_key = new_vault_key()
                await asyncio.to_thread(init_repository, spec, vault_key, key_dir=self.key_dir)
                msg.wrapped_vault_key = wrap_vault_key(login.wrap_key, vault_key)

        def add(profile: common_pb2.Profile) -> None:
            profile.vaults.extend(vaults)
            profile.items.extend(items)
            profile.schedules.extend(schedules)

        await self.profile.edit(add)
        handle.info(
            f"imported {len(items)} Protected Items, {len(vaults)} Storage Vaults and "
            f"{len(schedules)} schedules"
        )

    # ------------------------------------------------------------ mounts

    async def mount_plan(self, request: MountRequest) -> MountPlan:
        """Open the vault's repository for a mount and say what the mount shows."""
        if not os.path.isabs(request.mountpoint):
            raise MountError(
                f"the mount point must be an absolute path, not {request.mountpoint!r}"
            )
        login = self._login()
        profile = await self.profile.fetch()
        vault = self._vault(profile, request.vault)
        item_ids = frozenset({self._item_id_or_raw(profile, request.item)} if request.item else ())
        options = MountOptions(
            mountpoint=request.mountpoint,
            item_ids=item_ids,
            snapshot=request.snapshot,
            all_devices=request.all_devices,
            device_id=login.device_id,
            cache_bytes=request.cache_bytes or DEFAULT_CACHE_BYTES,
        )
        repo = await asyncio.to_thread(
            open_repository, vault, login.wrap_key, key_dir=self.key_dir, server_url=login.server
        )

        names = {i.item_id: i.name for i in profile.items}
        return MountPlan(repo, options, lambda: names)

    # ------------------------------------------------------------ snapshots

    async def read_vault(
        self,
        vault_ref: str,
        read: Callable[[Repository, str], T],
        *,
        profile: common_pb2.Profile | None = None,
        trees_only: bool = False,
    ) -> T:
        """Run ``read(repository, device id)`` on a worker thread with the vault's
        repository open (closed afterwards). ``profile``: one just fetched.
        ``trees_only``: ``read`` reads trees and snapshots, never file contents, so
        data blobs are left out of the index (most of a big vault's index)."""
        login = self._login()
        vault = self._vault(profile or await self.profile.fetch(), vault_ref)
        index_only = BlobType.TREE if trees_only else None

        def run() -> T:
            repo = open_repository(
                vault,
                login.wrap_key,
                key_dir=self.key_dir,
                server_url=login.server,
                index_only=index_only,
            )
            try:
                return read(repo, login.device_id)
            finally:
                repo.close()

        return await asyncio.to_thread(run)

    async def list_dir(
        self,
        vault_ref: str,
        snapshot: str,
        path: str,
        *,
        recursive: bool = False,
        item_ref: str = "",
        tags: tuple[str, ...] = (),
    ) -> list[Entry]:
        """The directory ``path`` of a snapshot (id, prefix, ``latest``…), or with
        ``recursive`` everything below it."""
        profile = await self.profile.fetch()
        item_id = self._item_id_or_raw(profile, item_ref) if item_ref else ""

        def read(repo: Repository, device_id: str) -> list[Entry]:
            chosen = resolve_snapshot(
                repo,
                snapshot,
                item_id=item_id,
                tags=tags,
                device_id=device_id,
                item_label=item_ref,
            )
            if not recursive:
                return list_dir(repo, chosen.id, path or "/")
            return list(find(repo, [chosen.id], FindQuery(), under=snapshot_path(path or "/")))

        return await self.read_vault(vault_ref, read, profile=profile, trees_only=True)

    async def list_tree(
        self,
        vault_ref: str,
        snapshot: str,
        path: str,
        *,
        item_ref: str = "",
        tags: tuple[str, ...] = (),
        batch: int = LIST_BATCH,
    ) -> AsyncGenerator[EntryColumns, None]:
        """Everything below ``path`` of a snapshot, depth first, in columns of at most
        ``batch`` entries. The walk runs on a worker thread at most ``LIST_AHEAD``
        batches ahead of the reader, so memory stays flat however many files the
        snapshot holds; it stops at the next batch once the reader stops."""
        profile = await self.profile.fetch()
        item_id = self._item_id_or_raw(profile, item_ref) if item_ref else ""

        def read(repo: Repository, device_id: str, hand: Callable[[EntryColumns], None]) -> None:
            chosen = resolve_snapshot(
                repo,
                snapshot,
                item_id=item_id,
                tags=tags,
                device_id=device_id,
                item_label=item_ref,
            )
            under = snapshot_path(path or "/")
            for columns in list_tree(repo, chosen.id, under=under, batch=batch):
                hand(columns)

        async def run(hand: Callable[[EntryColumns], None]) -> None:
            await self.read_vault(
                vault_ref, lambda r, d: read(r, d, hand), profile=profile, trees_only=True
            )

        async with aclosing(batches_from_thread(run, ahead=LIST_AHEAD)) as batches:
            async for columns in batches:
                yield columns

    async def find(
        self,
        vault_ref: str,
        snapshots: tuple[str, ...],
        query: FindQuery,
        *,
        item_ref: str = "",
        tags: tuple[str, ...] = (),
    ) -> list[Entry]:
        """Search the named snapshots (ids, prefixes, ``latest``…), or every snapshot
        of the vault that has ``item_ref`` and ``tags``."""
        profile = await self.profile.fetch()
        item_id = self._item_id_or_raw(profile, item_ref) if item_ref else ""

        def read(repo: Repository, device_id: str) -> list[Entry]:
            if snapshots:
                ids = [
                    resolve_snapshot(
                        repo,
                        ref,
                        item_id=item_id,
                        tags=tags,
                        device_id=device_id,
                        item_label=item_ref,
                    ).id
                    for ref in snapshots
                ]
            else:
                chosen = select_snapshots(repo.list_snapshots(), item_id=item_id, tags=tags)
                ids = [s.id for s in chosen]
            return list(find(repo, ids, query))

        return await self.read_vault(vault_ref, read, profile=profile, trees_only=True)

    async def list_snapshots(
        self,
        vault_ref: str,
        *,
        item_ref: str = "",
        all_devices: bool = False,
        unknown_only: bool = False,
        tags: tuple[str, ...] = (),
    ) -> list[SnapshotInfo]:
        login = self._login()
        profile = await self.profile.fetch()
        names = {i.item_id: i.name for i in profile.items}
        item_id = self._item_id_or_raw(profile, item_ref) if item_ref else ""
        snapshots = await self.read_vault(
            vault_ref, lambda repo, _: repo.list_snapshots(), profile=profile, trees_only=True
        )
        infos = [snapshot_info(s, names) for s in select_snapshots(snapshots, tags=tags)]
        if item_id:
            infos = [s for s in infos if s.item_id == item_id]
        if unknown_only:
            infos = [s for s in infos if s.unknown_item]
        elif not all_devices and not item_id:
            infos = [s for s in infos if s.device_id == login.device_id]
        return infos
