"""AgentService: what a logged-in device calls, including its live connection."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from comet.server import document_bounds
from comet.server.buckets import grants
from comet.server.buckets.store import BucketStore
from comet.server.errors import InvalidRequestError, NotFoundError, ServerError
from comet.server.rpc import convert
from comet.server.rpc.audited import audited_profile_put
from comet.server.rpc.auth_context import Authenticator, peer_address
from comet.server.rpc.connection_marks import ConnectionMarks
from comet.server.rpc.errors import abort_with, handles_errors
from comet.server.rpc.live import LiveConnection, LiveRegistry
from comet.server.store.accounts import AccountStore, Principal
from comet.server.store.availability import log_background_failure
from comet.server.store.jobs import JobStore
from comet.server.store.profiles import ProfileStore
from comet.v1 import common_pb2, control_pb2, control_pb2_grpc

log = logging.getLogger(__name__)
Ctx = grpc.aio.ServicerContext[Any, Any]


# What ReportDeviceEvent accepts: app and session actions taken on the device.
DEVICE_EVENTS = frozenset({"lock", "unlock", "disconnect"})


class AgentService(control_pb2_grpc.AgentServiceServicer):
    def __init__(
        self,
        accounts: AccountStore,
        profiles: ProfileStore,
        jobs: JobStore,
        registry: LiveRegistry,
        *,
        instance_id: str,
        heartbeat_seconds: int,
        buckets: BucketStore,
        on_presence: Callable[..., Awaitable[None]] | None = None,
    ) -> None:
        self._accounts = accounts
        self._profiles = profiles
        self._jobs = jobs
        self._auth = Authenticator(accounts)
        self._registry = registry
        self._instance_id = instance_id
        self._heartbeat_seconds = heartbeat_seconds
        self._buckets = buckets
        self._marks = ConnectionMarks(accounts, instance_id)
        # Told when a device's live connection opens or closes (notifications).
        self._on_presence = on_presence

    @handles_errors
    async def ListDevices(
        self, request: control_pb2.ListAccountDevicesRequest, context: Ctx
    ) -> control_pb2.ListAccountDevicesReply:
        principal = await self._auth.device(context)
        devices = await self._accounts.list_devices(user_id=principal.user_id)
        return control_pb2.ListAccountDevicesReply(
            devices=[convert.device_to_proto(d) for d in devices]
        )

    @handles_errors
    async def GetProfile(
        self, request: control_pb2.GetProfileRequest, context: Ctx
    ) -> common_pb2.Profile:
        principal = await self._auth.device(context)
        assert principal.device_id is not None
        view = await self._profiles.get(principal.user_id, reveal_secrets=True)
        return await self._with_bucket_credentials(convert.profile_to_proto(view), principal)

    @handles_errors
    async def PutProfile(
        self, request: control_pb2.PutProfileRequest, context: Ctx
    ) -> common_pb2.Profile:
        principal = await self._auth.device(context)
        assert principal.device_id is not None
        document_bounds.check(request.profile, what="the profile")
        for vault in request.profile.vaults:
            if vault.WhichOneof("settings") == "comet":
                vault.comet.bucket_key = ""  # each device's own: never stored
        view = await audited_profile_put(
            self._accounts,
            self._profiles,
            principal,
            context,
            version=request.profile.version,
            document=convert.profile_document(request.profile),
        )
        return await self._with_bucket_credentials(convert.profile_to_proto(view), principal)

    async def _with_bucket_credentials(
        self, profile: common_pb2.Profile, principal: Principal
    ) -> common_pb2.Profile:
        """The reading device's own credential in each "Comet Server" vault."""
        assert principal.device_id is not None
        for vault in profile.vaults:
            if vault.WhichOneof("settings") == "comet" and vault.comet.bucket_id:
                vault.comet.bucket_key = await self._buckets.credential(
                    vault.comet.bucket_id, principal.device_id
                )
        return profile

    @handles_errors
    async def ReportJob(
        self, request: control_pb2.JobReport, context: Ctx
    ) -> control_pb2.JobReportAck:
        principal = await self._auth.device(context)
        assert principal.device_id is not None
        request = document_bounds.job_report(request)
        last = await self._jobs.report(
            user_id=principal.user_id,
            device_id=principal.device_id,  # from the credential, never from the message
            job=convert.job_from_proto(request.job),
            log=convert.log_from_proto(request.log),
            final=request.final,
        )
        return control_pb2.JobReportAck(last_log_seq=last)

    @handles_errors
    async def ListJobs(
        self, request: control_pb2.ListAccountJobsRequest, context: Ctx
    ) -> control_pb2.ListAccountJobsReply:
        principal = await self._auth.device(context)
        query = convert.job_query_from_proto(request.filter)
        # Whatever the filter says, only the caller's own account.
        query = dataclasses.replace(query, username="", user_id=principal.user_id)
        return convert.job_page_to_proto(await self._jobs.find(query))

    @handles_errors
    async def ReportDeviceEvent(
        self, request: control_pb2.DeviceEvent, context: Ctx
    ) -> control_pb2.DeviceEventAck:
        principal = await self._auth.device(context)
        if request.action not in DEVICE_EVENTS:
            raise InvalidRequestError(
                f"unknown device event {request.action!r}; expected one of "
                + ", ".join(sorted(DEVICE_EVENTS))
            )
        await self._accounts.audit(
            principal.username,
            f"device.{request.action}",
            principal.device_id or "",
            source=peer_address(context),
        )
        return control_pb2.DeviceEventAck()

    @handles_errors
    async def CreateBucket(
        self, request: control_pb2.CreateBucketRequest, context: Ctx
    ) -> control_pb2.CreateBucketReply:
        principal = await self._auth.device(context)
        assert principal.device_id is not None
        bucket = await self._buckets.create(
            principal.user_id,
            device_id=principal.device_id,
            quota_bytes=request.quota_bytes,
            immutable_seconds=request.immutable_seconds or request.immutable_days * 86400,
        )
        await self._accounts.audit(
            principal.username,
            "bucket.create",
            bucket.record.bucket_id,
            source=peer_address(context),
        )
        return control_pb2.CreateBucketReply(
            bucket_id=bucket.record.bucket_id,
            bucket_key=bucket.key,
            quota_bytes=bucket.record.quota_bytes,
            immutable_seconds=bucket.record.immutable_seconds,
        )

    async def _scheduled_grant(
        self, bucket_id: str, principal: Principal, source: str
    ) -> grants.Grant:
        """A grant for a scheduled retention, inside the policy's retention window;
        audited whether given or refused."""
        assert principal.device_id is not None
        try:
            grant, policy_name = await self._buckets.issue_scheduled_grant(
                bucket_id, user_id=principal.user_id, device_id=principal.device_id
            )
        except ServerError as e:
            await self._accounts.audit(
                principal.username, "bucket.delete_grant", bucket_id, source=source,
                success=False, details=f"device {principal.device_id}, scheduled: {e.message}",
            )  # fmt: skip
            raise
        await self._accounts.audit(
            principal.username, "bucket.delete_grant", bucket_id, source=source,
            details=f"device {principal.device_id}, scheduled retention in the window of"
            f" policy {policy_name!r}, until {grant.expires_at.isoformat(timespec='seconds')}",
        )  # fmt: skip
        return grant

    @handles_errors
    async def RequestDeleteGrant(
        self, request: control_pb2.DeleteGrantRequest, context: Ctx
    ) -> control_pb2.DeleteGrant:
        principal = await self._auth.device(context)
        assert principal.device_id is not None
        source = peer_address(context)
        if request.scheduled and not request.auth_key:
            grant = await self._scheduled_grant(request.bucket_id, principal, source)
            return control_pb2.DeleteGrant(
                grant=grant.token, expires_at=convert.timestamp(grant.expires_at)
            )
        owned = await self._buckets.list_buckets(user_id=principal.user_id)
        if request.bucket_id not in {b.bucket_id for b in owned}:
            raise NotFoundError(f"your account has no bucket {request.bucket_id!r}")
        await self._accounts.confirm_password(principal.username, request.auth_key, source=source)
        grant = await self._buckets.issue_grant(request.bucket_id, device_id=principal.device_id)
        await self._accounts.audit(
            principal.username, "bucket.delete_grant", request.bucket_id, source=source,
            details=f"device {principal.device_id}, password re-entered",
        )  # fmt: skip
        return control_pb2.DeleteGrant(
            grant=grant.token, expires_at=convert.timestamp(grant.expires_at)
        )

    async def Connect(
        self,
        request_iterator: AsyncIterator[control_pb2.AgentMessage],
        context: Ctx,
    ) -> AsyncIterator[control_pb2.ServerMessage]:
        try:
            principal = await self._auth.device(context)
        except BaseException as e:
            await abort_with(e, context, "AgentService.Connect")
        assert principal.device_id is not None
        connection = LiveConnection(device_id=principal.device_id, user_id=principal.user_id)
        self._registry.register(connection)
        reader = asyncio.create_task(self._read(request_iterator, connection))
        beat = asyncio.create_task(self._heartbeat(connection))
        try:
            # Accepted only once other instances can route commands here.
            await self._marks.connected(connection.device_id)
            log.info("device %s connected", connection.device_id)
            await self._presence(connection.device_id, online=True)
            yield control_pb2.ServerMessage(
                accepted=control_pb2.ConnectionAccepted(
                    server_instance=self._instance_id, heartbeat_seconds=self._heartbeat_seconds
                )
            )
            while True:
                message = await connection.outbox.get()
                if message is None:
                    break
                yield message
        finally:
            reader.cancel()
            beat.cancel()
            if self._registry.unregister(connection):
                connection.close()
            with contextlib.suppress(Exception):
                await self._marks.disconnected(connection.device_id)
            log.info("device %s disconnected", connection.device_id)
            await self._presence(connection.device_id, online=False)

    async def _presence(self, device_id: str, *, online: bool) -> None:
        if self._on_presence is None:
            return
        try:
            await self._on_presence(device_id, online=online)
        except Exception as e:  # a notification must never break the connection
            log_background_failure(log, f"could not queue the presence event of {device_id}", e)

    async def _read(
        self, messages: AsyncIterator[control_pb2.AgentMessage], connection: LiveConnection
    ) -> None:
        try:
            async for message in messages:
                connection.seen = True
                if message.HasField("reply"):
                    connection.resolve(message.reply)
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        except Exception as e:  # e.g. an undecodable message: end this stream
            log.info("device %s sent what cannot be read: %s", connection.device_id, e)
        finally:
            # The agent closed its side: end the response stream too.
            connection.outbox.put_nowait(None)

    async def _heartbeat(self, connection: LiveConnection) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_seconds)
            connection.outbox.put_nowait(
                control_pb2.ServerMessage(
                    heartbeat=control_pb2.Heartbeat(time=convert.timestamp(None))
                )
            )
