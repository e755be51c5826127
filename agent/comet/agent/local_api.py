"""The local API (``comet.v1.AgentApi``) served to the app and the CLI over a unix
socket that only its owner can open. Thin: validate, convert, call the agent."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc

from comet.agent.cancel import CancelToken
from comet.agent.chunk_pipe import ChunkPipe
from comet.agent.convert import (
    columns_to_proto,
    entry_to_proto,
    find_query_from_proto,
    job_to_proto,
    log_to_proto,
    mount_request_from_proto,
    snapshot_to_proto,
    target_from_proto,
)
from comet.agent.errors import AgentError, LocalPathError
from comet.agent.import_objects import check_import_allowed
from comet.agent.jobs.codes import Classification, Status
from comet.agent.jobs.store import JobQuery
from comet.agent.jobs.targets import TargetError
from comet.agent.operations import NotFoundError, RestoreRequest
from comet.agent.profile_sync import NotLoggedInError, ProfileConflictError
from comet.agent.server_link import check_certificate
from comet.agent.snapshot_tools import SnapshotFilter
from comet.agent.toolkit_convert import diff_to_proto, retention_to_proto, stats_to_proto
from comet.agent.transport import ServerUrlError, parse_server_url
from comet.v1 import agent_api_pb2, agent_api_pb2_grpc, common_pb2, control_pb2

if TYPE_CHECKING:
    from comet.agent.service import Agent

Ctx = grpc.aio.ServicerContext[Any, Any]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_STATUS: dict[type[AgentError], grpc.StatusCode] = {
    ServerUrlError: grpc.StatusCode.INVALID_ARGUMENT,
    TargetError: grpc.StatusCode.INVALID_ARGUMENT,
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    NotLoggedInError: grpc.StatusCode.UNAUTHENTICATED,
    ProfileConflictError: grpc.StatusCode.ABORTED,
}


async def abort_with(context: Ctx, e: AgentError) -> None:
    """End the call with the gRPC status for ``e``, its message and stable code."""
    code = next(
        (status for cls, status in _STATUS.items() if isinstance(e, cls)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    context.set_trailing_metadata((("comet-error-code", e.code),))
    await context.abort(code, str(e))


def handles_errors(fn: F) -> F:
    """AgentError → a gRPC status carrying the error's message and stable code; an
    OSError (a path or disk of this device) → the same, as a LocalPathError sentence."""

    @functools.wraps(fn)
    async def wrapper(self: object, request: object, context: Ctx) -> Any:
        try:
            return await fn(self, request, context)
        except AgentError as e:
            await abort_with(context, e)
        except OSError as e:
            await abort_with(context, LocalPathError.from_os_error(e))

    return cast(F, wrapper)


class LocalApi(agent_api_pb2_grpc.AgentApiServicer):
    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    # ------------------------------------------------------------ login state

    async def Status(
        self, request: agent_api_pb2.StatusRequest, context: Ctx
    ) -> agent_api_pb2.StatusReply:
        return self._agent.status()

    @handles_errors
    async def Login(
        self, request: agent_api_pb2.AgentLoginRequest, context: Ctx
    ) -> agent_api_pb2.AgentLoginReply:
        if not request.username or not request.password:
            raise AgentError("a username and a password are needed")
        registered = await self._agent.login(request)
        return agent_api_pb2.AgentLoginReply(
            status=self._agent.status(), device_registered_now=registered
        )

    @handles_errors
    async def ServerCertificate(
        self, request: agent_api_pb2.ServerCertificateRequest, context: Ctx
    ) -> agent_api_pb2.ServerCertificateReply:
        if not parse_server_url(request.server).secure:
            return agent_api_pb2.ServerCertificateReply(secure=False)
        check = await check_certificate(self._agent.state, request.server, request.ca_pem.encode())
        return agent_api_pb2.ServerCertificateReply(
            secure=True,
            fingerprint=check.presented.fingerprint,
            verified=check.presented.verified,
            pinned_fingerprint=check.pinned_fingerprint,
            problem=check.presented.problem,
        )

    async def Lock(
        self, request: agent_api_pb2.LockRequest, context: Ctx
    ) -> agent_api_pb2.StatusReply:
        await self._agent.lock()
        return self._agent.status()

    @handles_errors
    async def ChangePassword(
        self, request: agent_api_pb2.LocalChangePasswordRequest, context: Ctx
    ) -> agent_api_pb2.StatusReply:
        await self._agent.change_password(request.current_password, request.new_password)
        return self._agent.status()

    @handles_errors
    async def Unlock(
        self, request: agent_api_pb2.UnlockRequest, context: Ctx
    ) -> agent_api_pb2.StatusReply:
        await self._agent.unlock(request.password)
        return self._agent.status()

    @handles_errors
    async def BeginTotp(
        self, request: agent_api_pb2.LocalBeginTotpRequest, context: Ctx
    ) -> agent_api_pb2.LocalBeginTotpReply:
        enrolment = await self._agent.totp.begin()
        return agent_api_pb2.LocalBeginTotpReply(secret=enrolment.secret, otpauth_uri=enrolment.uri)

    @handles_errors
    async def ConfirmTotp(
        self, request: agent_api_pb2.LocalTotpCodeRequest, context: Ctx
    ) -> agent_api_pb2.StatusReply:
        await self._agent.totp.confirm(request.code)
        return self._agent.status()

    @handles_errors
    async def DisableTotp(
        self, request: agent_api_pb2.LocalTotpCodeRequest, context: Ctx
    ) -> agent_api_pb2.StatusReply:
        await self._agent.totp.disable(request.code)
        return self._agent.status()

    async def Disconnect(
        self, request: agent_api_pb2.DisconnectRequest, context: Ctx
    ) -> agent_api_pb2.StatusReply:
        await self._agent.disconnect()
        return self._agent.status()

    # ------------------------------------------------------------ profile

    @handles_errors
    async def GetProfile(
        self, request: agent_api_pb2.LocalProfileRequest, context: Ctx
    ) -> common_pb2.Profile:
        if request.refetch:
            return await self._agent.profile.fetch()
        return self._agent.profile.cached()

    @handles_errors
    async def AddVault(
        self, request: agent_api_pb2.AddVaultRequest, context: Ctx
    ) -> common_pb2.StorageVault:
        return await self._agent.ops.add_vault(request.vault)

    @handles_errors
    async def AddItem(
        self, request: agent_api_pb2.AddItemRequest, context: Ctx
    ) -> common_pb2.ProtectedItem:
        return await self._agent.ops.add_item(
            request.item, allow_missing=request.allow_missing_includes
        )

    @handles_errors
    async def AddSchedule(
        self, request: agent_api_pb2.AddScheduleRequest, context: Ctx
    ) -> common_pb2.Schedule:
        return await self._agent.ops.add_schedule(request.schedule)

    @handles_errors
    async def SaveProfile(
        self, request: agent_api_pb2.SaveProfileRequest, context: Ctx
    ) -> common_pb2.Profile:
        return await self._agent.profile.save(request.profile)

    @handles_errors
    async def ListDevices(
        self, request: agent_api_pb2.LocalDevicesRequest, context: Ctx
    ) -> agent_api_pb2.LocalDevicesReply:
        return agent_api_pb2.LocalDevicesReply(devices=await self._agent.profile.devices())

    # ------------------------------------------------------------ jobs

    @handles_errors
    async def StartBackup(
        self, request: agent_api_pb2.StartBackupRequest, context: Ctx
    ) -> common_pb2.Job:
        job = await self._agent.ops.start_backup(
            request.item_id,
            request.vault_id,
            skip_if_running=request.options.skip_if_running,
            stop_after_seconds=request.options.stop_after_seconds,
            bandwidth_bps=request.options.bandwidth_limit_bps,
            tags=tuple(request.options.tags),
        )
        return job_to_proto(job)

    @handles_errors
    async def StartRestore(
        self, request: agent_api_pb2.StartRestoreRequest, context: Ctx
    ) -> common_pb2.Job:
        job = await self._agent.ops.start_restore(
            RestoreRequest(
                vault=request.vault_id,
                snapshot=request.snapshot_id or "latest",
                item=request.item_id,
                paths=tuple(request.options.paths),
                allow_partial=request.options.allow_partial,
            ),
            target_from_proto(request.options),
        )
        return job_to_proto(job)

    @handles_errors
    async def ListImportSources(
        self, request: agent_api_pb2.ListImportSourcesRequest, context: Ctx
    ) -> agent_api_pb2.ListImportSourcesReply:
        check_import_allowed(self._agent.profile.cached())
        result = await asyncio.to_thread(self._agent.ops.import_sources)
        return agent_api_pb2.ListImportSourcesReply(
            sources=[
                agent_api_pb2.ImportSource(
                    source_id=s.source_id,
                    product=str(s.product),
                    path=str(s.path or ""),
                    description=s.description,
                )
                for s in result.sources
            ]
        )

    @handles_errors
    async def PreviewImport(
        self, request: agent_api_pb2.PreviewImportRequest, context: Ctx
    ) -> agent_api_pb2.ImportPreview:
        plan, made = await self._agent.ops.preview_import(request.source_id)
        return agent_api_pb2.ImportPreview(
            items=made.items,
            vaults=made.vaults,
            schedules=made.schedules,
            warnings=plan.warnings,
            missing_secrets=[", ".join(v.missing_secrets) for v in plan.vaults],
        )

    @handles_errors
    async def StartVaultJob(
        self, request: agent_api_pb2.StartVaultJobRequest, context: Ctx
    ) -> common_pb2.Job:
        if request.classification == common_pb2.JOB_CLASSIFICATION_IMPORT:
            return job_to_proto(await self._agent.ops.start_import(request.import_source_id))
        if request.classification not in Classification._value2member_map_:
            raise AgentError(f"unknown job classification {request.classification}")
        job = await self._agent.ops.start_vault_job(
            Classification(request.classification),
            request.vault_id,
            snapshot_ids=tuple(request.snapshot_ids),
            read_data=request.read_data,
            remove_all_locks=request.remove_all_locks,
            password=request.password,
            tags=tuple(request.tags),
        )
        return job_to_proto(job)

    @handles_errors
    async def CancelJob(
        self, request: agent_api_pb2.CancelLocalJobRequest, context: Ctx
    ) -> common_pb2.Job:
        if not self._agent.runner.cancel(request.job_id):
            raise NotFoundError(f"job {request.job_id} is not running")
        job = self._agent.runner.get(request.job_id)
        assert job is not None
        return job_to_proto(job)

    @handles_errors
    async def GetJob(
        self, request: agent_api_pb2.GetLocalJobRequest, context: Ctx
    ) -> common_pb2.Job:
        job = self._agent.runner.get(request.job_id)
        if job is None:
            raise NotFoundError(f"no job {request.job_id!r} on this device")
        return job_to_proto(job)

    async def WatchJobs(
        self, request: agent_api_pb2.WatchJobsRequest, context: Ctx
    ) -> AsyncIterator[agent_api_pb2.JobEvent]:
        queue = self._agent.runner.subscribe()
        try:
            if request.job_id:
                # A job that ended before the watch began still gets its last event.
                job = self._agent.runner.get(request.job_id)
                if job is None:
                    await context.abort(grpc.StatusCode.NOT_FOUND, f"no job {request.job_id!r}")
                assert job is not None
                if not job.status.running:
                    yield agent_api_pb2.JobEvent(job=job_to_proto(job), ended=True)
                    return
            while True:
                event = await queue.get()
                if request.job_id and event.job.job_id != request.job_id:
                    continue
                yield agent_api_pb2.JobEvent(
                    job=job_to_proto(event.job),
                    log=[log_to_proto(e) for e in event.log],
                    ended=event.ended,
                )
                if request.job_id and event.ended:
                    return
        finally:
            self._agent.runner.unsubscribe(queue)

    @handles_errors
    async def History(
        self, request: agent_api_pb2.HistoryRequest, context: Ctx
    ) -> agent_api_pb2.HistoryReply:
        # Filters take names as well as ids; ids are what jobs record.
        refs = await self._agent.ops.job_filter_ids(
            request.item_id, request.vault_id, request.device_id
        )
        request.item_id, request.vault_id, request.device_id = refs
        query = JobQuery(
            statuses=tuple(Status(s) for s in request.statuses),
            classifications=tuple(Classification(c) for c in request.classifications),
            item_id=request.item_id,
            vault_id=request.vault_id,
            since_ns=request.since.ToNanoseconds() if request.HasField("since") else 0,
            limit=request.limit or 500,
        )
        if request.all_devices or (
            request.device_id and request.device_id != self._agent.state.load_login().device_id
        ):
            # Other devices' jobs live on the server.
            server_jobs = await self._agent.profile.account_jobs(
                control_pb2.JobFilter(
                    device_id=request.device_id,
                    item_id=request.item_id,
                    vault_id=request.vault_id,
                    statuses=request.statuses,
                    classifications=request.classifications,
                    since=request.since if request.HasField("since") else None,
                    page_size=request.limit or 500,
                )
            )
            return agent_api_pb2.HistoryReply(jobs=server_jobs)
        jobs = self._agent.ops.history(query)
        return agent_api_pb2.HistoryReply(jobs=[job_to_proto(j) for j in jobs])

    @handles_errors
    async def JobLog(
        self, request: agent_api_pb2.JobLogRequest, context: Ctx
    ) -> agent_api_pb2.JobLogReply:
        job, entries = self._agent.ops.job_log(request.job_id)
        return agent_api_pb2.JobLogReply(
            job=job_to_proto(job), entries=[log_to_proto(e) for e in entries]
        )

    # ------------------------------------------------------------ snapshots

    @handles_errors
    async def ListSnapshots(
        self, request: agent_api_pb2.ListLocalSnapshotsRequest, context: Ctx
    ) -> agent_api_pb2.ListLocalSnapshotsReply:
        snapshots = await self._agent.ops.list_snapshots(
            request.vault_id,
            item_ref=request.item_id,
            all_devices=request.all_devices,
            unknown_only=request.unknown_items,
            tags=tuple(request.tags),
        )
        return agent_api_pb2.ListLocalSnapshotsReply(
            snapshots=[snapshot_to_proto(s) for s in snapshots]
        )

    @handles_errors
    async def ListDir(
        self, request: agent_api_pb2.ListDirRequest, context: Ctx
    ) -> agent_api_pb2.ListDirReply:
        entries = await self._agent.ops.list_dir(
            request.vault_id,
            request.snapshot_id,
            request.path or "/",
            recursive=request.recursive,
            item_ref=request.item_id,
            tags=tuple(request.tags),
        )
        return agent_api_pb2.ListDirReply(entries=[entry_to_proto(e) for e in entries])

    async def ListTree(
        self, request: agent_api_pb2.ListDirRequest, context: Ctx
    ) -> AsyncIterator[agent_api_pb2.ListDirReply]:
        listing = self._agent.ops.list_tree(
            request.vault_id,
            request.snapshot_id,
            request.path or "/",
            item_ref=request.item_id,
            tags=tuple(request.tags),
        )
        try:
            async for columns in listing:
                if request.columns:
                    yield agent_api_pb2.ListDirReply(columns=columns_to_proto(columns))
                else:  # a client older than columns
                    entries = [entry_to_proto(e) for e in columns.entries()]
                    yield agent_api_pb2.ListDirReply(entries=entries)
        except AgentError as e:
            await abort_with(context, e)
        except OSError as e:
            await abort_with(context, LocalPathError.from_os_error(e))
        finally:
            await listing.aclose()

    @handles_errors
    async def Find(
        self, request: agent_api_pb2.FindRequest, context: Ctx
    ) -> agent_api_pb2.FindReply:
        query = find_query_from_proto(request.query)
        limit = query.limit or 10_000
        entries = await self._agent.ops.find(
            request.vault_id,
            tuple(request.snapshot_ids),
            replace(query, limit=limit + 1),
            item_ref=request.item_id,
            tags=tuple(request.tags),
        )
        return agent_api_pb2.FindReply(
            entries=[entry_to_proto(e) for e in entries[:limit]], truncated=len(entries) > limit
        )

    # ------------------------------------------------------------ the toolkit

    @handles_errors
    async def Diff(
        self, request: agent_api_pb2.DiffRequest, context: Ctx
    ) -> agent_api_pb2.DiffReply:
        which = SnapshotFilter(request.item_id, tuple(request.tags))
        result = await self._agent.ops.tools.diff(
            request.vault_id, request.old_snapshot, request.new_snapshot, which
        )
        return diff_to_proto(result)

    async def Dump(
        self, request: agent_api_pb2.DumpRequest, context: Ctx
    ) -> AsyncIterator[agent_api_pb2.DumpChunk]:
        tools = self._agent.ops.tools
        which = SnapshotFilter(request.item_id, tuple(request.tags))
        try:
            snapshot, kind = await tools.dump_kind(
                request.vault_id, request.snapshot_id or "latest", request.path or "/", which
            )
        except AgentError as e:
            await abort_with(context, e)
            return
        yield agent_api_pb2.DumpChunk(kind=kind.value, snapshot_id=snapshot.id.hex())
        cancel = CancelToken()
        pipe = ChunkPipe(cancel)

        async def produce() -> None:
            error: BaseException | None = None
            try:
                await tools.dump(
                    request.vault_id, snapshot.id.hex(), request.path or "/", pipe, cancel
                )
            except Exception as e:  # handed to the reader, which reports it
                error = e
            await asyncio.to_thread(pipe.close, error)

        producer = asyncio.create_task(produce())
        try:
            async for data in pipe.chunks():
                yield agent_api_pb2.DumpChunk(data=data)
        except AgentError as e:
            await abort_with(context, e)
        finally:
            cancel.cancel("the reader went away")
            await producer

    @handles_errors
    async def Stats(
        self, request: agent_api_pb2.StatsRequest, context: Ctx
    ) -> agent_api_pb2.StatsReply:
        which = SnapshotFilter(request.item_id, tuple(request.tags))
        result = await self._agent.ops.tools.stats(
            request.vault_id, request.snapshot_id, which, all_devices=request.all_devices
        )
        return stats_to_proto(result)

    @handles_errors
    async def PlanRetention(
        self, request: agent_api_pb2.PlanRetentionRequest, context: Ctx
    ) -> agent_api_pb2.PlanRetentionReply:
        preview = await self._agent.ops.tools.plan_retention(request.vault_id, tuple(request.tags))
        return retention_to_proto(preview)

    @handles_errors
    async def AttachVault(
        self, request: agent_api_pb2.AddVaultRequest, context: Ctx
    ) -> common_pb2.StorageVault:
        return await self._agent.ops.attach_vault(request.vault)

    @handles_errors
    async def SftpHostKey(
        self, request: agent_api_pb2.SftpHostKeyRequest, context: Ctx
    ) -> agent_api_pb2.SftpHostKeyReply:
        # Like ServerCertificate: no login needed, it only reads what a server presents.
        # paramiko is imported on first use (see vaults.open_storage).
        from comet.agent.storage.sftp import (
            fetch_host_key,
            host_key_fingerprint,
            host_key_matches,
            parse_host_key_pin,
        )

        if not request.host.strip() or request.port > 65535:
            raise AgentError("an SFTP host key check needs a host name and a port up to 65535")
        expected = parse_host_key_pin(request.expected) if request.expected.strip() else None
        seen = await asyncio.to_thread(fetch_host_key, request.host.strip(), request.port or 22)
        return agent_api_pb2.SftpHostKeyReply(
            host_key=seen,
            fingerprint=host_key_fingerprint(seen),
            key_type=seen.split()[0],
            matches=expected is not None and host_key_matches(expected, seen),
        )

    # ------------------------------------------------------------ mounts

    async def Mount(
        self, request: agent_api_pb2.MountRequest, context: Ctx
    ) -> AsyncIterator[agent_api_pb2.MountEvent]:
        try:
            served = await self._agent.mounts.start(
                await self._agent.ops.mount_plan(mount_request_from_proto(request))
            )
        except AgentError as e:
            await abort_with(context, e)
            return
        yield agent_api_pb2.MountEvent(mountpoint=served.mountpoint, mounted=True)
        if request.detach:
            return
        try:
            while served.session.running:  # until 'comet unmount', fusermount3 -u, or stop
                await asyncio.sleep(0.1)
        finally:  # the caller went away (Ctrl-C): the mount goes with it
            if served.session.running:
                await asyncio.to_thread(served.stop)
        yield agent_api_pb2.MountEvent(mountpoint=served.mountpoint, mounted=False)

    @handles_errors
    async def Unmount(
        self, request: agent_api_pb2.UnmountRequest, context: Ctx
    ) -> agent_api_pb2.UnmountReply:
        await self._agent.mounts.stop(request.mountpoint)
        return agent_api_pb2.UnmountReply()
