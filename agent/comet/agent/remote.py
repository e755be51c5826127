"""Executes the commands an admin sends down the live connection, replying with a
result or a clear error. Commands map onto the same operations the local API uses.

Whatever the server allowed, each command is checked here again against the device's
own policy (``device_policy``: remote programs, restore directories) and the user's
privacy setting ("administrators may view my files"); a refusal is logged and
answered with the reason."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import replace

from comet.agent.convert import (
    entry_to_proto,
    find_query_from_proto,
    item_from_proto,
    snapshot_to_proto,
    target_from_proto,
    timestamp_ns,
)
from comet.agent.device_policy import DevicePolicy, RefusedByDevicePolicyError
from comet.agent.errors import AgentError
from comet.agent.items import ItemType
from comet.agent.jobs.codes import Classification
from comet.agent.operations import Operations, RestoreRequest
from comet.v1 import common_pb2, control_pb2

log = logging.getLogger(__name__)

_PROGRAM_RESTORES = (
    common_pb2.RESTORE_TYPE_PROGRAM_PER_FILE,
    common_pb2.RESTORE_TYPE_PROGRAM_ARCHIVE,
)

_SHOWS_FILES = ("browse_snapshot", "search_snapshots", "browse_filesystem")


class UnsupportedCommandError(AgentError):
    code = "unsupported_command"


class PrivateFilesError(AgentError):
    code = "private_files"

    def __init__(self, what: str) -> None:
        super().__init__(
            f"the user does not allow administrators to view files on this device, "
            f"and {what} would show names or content of their files"
        )


class RemoteCommands:
    def __init__(
        self, ops: Operations, policy: DevicePolicy, *, on_disconnect: Callable[[], None]
    ) -> None:
        self._ops = ops
        self._policy = policy
        self._on_disconnect = on_disconnect

    async def handle(self, command: control_pb2.Command) -> control_pb2.CommandReply:
        action = command.WhichOneof("action") or ""
        try:
            self._check(command, action)
        except (RefusedByDevicePolicyError, PrivateFilesError) as e:
            log.warning("refused the remote command %s: %s", action, e.message)
            raise
        reply = await self._run(command, action)
        if reply.HasField("snapshots") and self._private():
            for snapshot in reply.snapshots.snapshots:
                del snapshot.paths[:]
        return reply

    # ------------------------------------------------------------ the device's own checks

    def _private(self) -> bool:
        return not self._ops.profile.cached().settings.allow_admin_view_files

    def _check(self, command: control_pb2.Command, action: str) -> None:
        if action == "run_restore":
            self._check_restore(command.run_restore.options)
        elif action == "run_backup":
            self._check_backup(command.run_backup)
        elif action == "import_settings":
            self._policy.check_program("an import of another tool's settings")
        elif action in _SHOWS_FILES and self._private():
            raise PrivateFilesError(f"a {action.replace('_', ' ')} command")

    def _check_restore(self, options: common_pb2.RestoreOptions) -> None:
        if options.type in _PROGRAM_RESTORES or options.program_command:
            self._policy.check_program(f"a restore into the program {options.program_command!r}")
            if self._private():
                raise PrivateFilesError("a restore into a program")
        elif options.type == common_pb2.RESTORE_TYPE_ARCHIVE_FILE:
            if self._private():
                raise PrivateFilesError("a restore to an archive file")
            self._policy.check_restore_path(options.destination, "the archive file")
        elif options.type == common_pb2.RESTORE_TYPE_FILES and not options.original_paths:
            if self._private():
                raise PrivateFilesError("a restore to another directory")
            self._policy.check_restore_path(options.destination, "the restore directory")

    def _check_backup(self, request: control_pb2.RunBackupCommand) -> None:
        profile = self._ops.profile.cached()
        item_ref, vault_ref = request.item_id, request.vault_id
        if request.schedule_id:
            for schedule in profile.schedules:
                if schedule.schedule_id == request.schedule_id:
                    item_ref, vault_ref = schedule.item_id, schedule.vault_id
        device_id = self._ops.state.load_login().device_id
        for item in profile.items:
            if item_ref in (item.item_id, item.name):
                spec = item_from_proto(item)
                programs = spec.type is ItemType.PROGRAM or spec.program_command
                if programs or spec.pre_commands or spec.post_commands:
                    self._policy.check_program(f"a backup of Protected Item {spec.name!r}")
        for vault in profile.vaults:
            if vault_ref in (vault.vault_id, vault.name):
                own = [
                    c
                    for c in (*vault.pre_commands, *vault.post_commands)
                    if c.owner_device_id == device_id
                ]
                if own:
                    self._policy.check_program(
                        f"a backup to Storage Vault {vault.name!r} (its pre/post commands)"
                    )

    # ------------------------------------------------------------ running commands

    async def _run(self, command: control_pb2.Command, action: str) -> control_pb2.CommandReply:
        done = control_pb2.CommandReply(done=control_pb2.Empty())
        if action == "refetch_profile":
            await self._ops.profile.fetch()
            return done
        if action == "disconnect":
            # Reply first, then log out: the stream must still carry the reply back.
            asyncio.get_running_loop().call_later(0.2, self._on_disconnect)
            return done
        if action == "run_backup":
            request = command.run_backup
            if request.schedule_id:
                profile = self._ops.profile.cached()
                schedule = next(
                    (s for s in profile.schedules if s.schedule_id == request.schedule_id), None
                )
                if schedule is None:
                    raise AgentError(f"no schedule {request.schedule_id!r} on this device")
                item_ref, vault_ref = schedule.item_id, schedule.vault_id
            else:
                item_ref, vault_ref = request.item_id, request.vault_id
            job = await self._ops.start_backup(
                item_ref,
                vault_ref,
                skip_if_running=request.options.skip_if_running,
                stop_after_seconds=request.options.stop_after_seconds,
                bandwidth_bps=request.options.bandwidth_limit_bps,
            )
            return self._started(job.job_id)
        if action == "run_restore":
            request_r = command.run_restore
            job = await self._ops.start_restore(
                RestoreRequest(
                    vault=request_r.vault_id,
                    snapshot=request_r.snapshot_id or "latest",
                    item=request_r.item_id,
                    paths=tuple(request_r.options.paths),
                    allow_partial=request_r.options.allow_partial,
                ),
                target_from_proto(request_r.options),
            )
            return self._started(job.job_id)
        vault_jobs = {
            "apply_retention": (Classification.RETENTION, command.apply_retention.vault_id),
            "reindex": (Classification.REINDEX, command.reindex.vault_id),
            "verify": (Classification.DEEP_VERIFY, command.verify.vault_id),
            "unlock": (Classification.UNLOCK, command.unlock.vault_id),
            "delete_snapshots": (Classification.DELETE_SNAPSHOT, command.delete_snapshots.vault_id),
        }
        if action in vault_jobs:
            classification, vault_id = vault_jobs[action]
            job = await self._ops.start_vault_job(
                classification,
                vault_id,
                snapshot_ids=tuple(command.delete_snapshots.snapshot_ids),
                read_data=command.verify.read_data,
                remove_all_locks=command.unlock.force,
            )
            return self._started(job.job_id)
        if action == "cancel_job":
            if not self._ops.runner.cancel(command.cancel_job.job_id, "cancelled by an admin"):
                raise AgentError(f"job {command.cancel_job.job_id} is not running on this device")
            return done
        if action == "list_snapshots":
            snapshots = await self._ops.list_snapshots(
                command.list_snapshots.vault_id,
                item_ref=command.list_snapshots.item_id,
                all_devices=True,
            )
            return control_pb2.CommandReply(
                snapshots=control_pb2.SnapshotList(
                    snapshots=[snapshot_to_proto(s) for s in snapshots]
                )
            )
        if action == "browse_snapshot":
            browse = command.browse_snapshot
            entries = await self._ops.list_dir(browse.vault_id, browse.snapshot_id, browse.path)
            return control_pb2.CommandReply(
                entries=control_pb2.EntryList(entries=[entry_to_proto(e) for e in entries])
            )
        if action == "search_snapshots":
            search = command.search_snapshots
            query = find_query_from_proto(search.query)
            found = await self._ops.find(
                search.vault_id,
                tuple(search.snapshot_ids),
                replace(query, limit=query.limit or 1000),
            )
            return control_pb2.CommandReply(
                entries=control_pb2.EntryList(entries=[entry_to_proto(e) for e in found])
            )
        if action == "browse_filesystem":
            local = await asyncio.to_thread(list_local_dir, command.browse_filesystem.path)
            return control_pb2.CommandReply(entries=control_pb2.EntryList(entries=local))
        raise UnsupportedCommandError(f"this agent does not support the command {action!r} yet")

    @staticmethod
    def _started(job_id: str) -> control_pb2.CommandReply:
        # The job itself is filled in by the server when the admin asked to wait.
        return control_pb2.CommandReply(job_started=control_pb2.JobStarted(job_id=job_id))


def list_local_dir(path: str) -> list[common_pb2.SnapshotEntry]:
    """One folder of the device's own filesystem, for an admin choosing what to protect."""
    if not os.path.isabs(path or "/"):
        raise AgentError(f"a path to browse must be absolute, not {path!r}")
    entries = []
    try:
        with os.scandir(path or "/") as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                kind = (
                    common_pb2.NODE_TYPE_DIRECTORY
                    if stat.S_ISDIR(st.st_mode)
                    else common_pb2.NODE_TYPE_SYMLINK
                    if stat.S_ISLNK(st.st_mode)
                    else common_pb2.NODE_TYPE_FILE
                )
                entries.append(
                    common_pb2.SnapshotEntry(
                        path=entry.path,
                        type=kind,
                        size=st.st_size,
                        mode=st.st_mode & 0o7777,
                        mtime=timestamp_ns(st.st_mtime_ns),
                    )
                )
    except OSError as e:
        raise AgentError(f"cannot list {path}: {e.strerror}") from e
    return sorted(entries, key=lambda e: e.path)
