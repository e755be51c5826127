"""AdminService: users, devices, policies, job history and remote commands. Every
method is checked against the permission table (``comet.server.authorization``) by
the guard before it runs; Dispatch checks each command again by what it would do."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import grpc

from comet.server import authorization, document_bounds, validation
from comet.server.buckets.dispatch_grant import attach_delete_grant
from comet.server.buckets.errors import ObjectProtectedError
from comet.server.buckets.store import BucketRecord, BucketStore
from comet.server.errors import (
    DeviceOfflineError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
)
from comet.server.rpc import command_facts, convert
from comet.server.rpc.audited import audited
from comet.server.rpc.auth_context import Authenticator, peer_address
from comet.server.rpc.errors import handles_errors
from comet.server.rpc.routing import CommandRouter
from comet.server.rpc.totp_admin import audited_totp_reset
from comet.server.store import profile_document
from comet.server.store.accounts import AccountStore, Role
from comet.server.store.jobs import JobRecord, JobStore
from comet.server.store.policies import PolicyStore
from comet.server.store.profiles import ProfileStore
from comet.v1 import admin_pb2, admin_pb2_grpc, common_pb2, control_pb2

Ctx = grpc.aio.ServicerContext[Any, Any]

_ROLES = {
    admin_pb2.ADMIN_ROLE_UNSPECIFIED: Role.USER,
    admin_pb2.ADMIN_ROLE_USER: Role.USER,
    admin_pb2.ADMIN_ROLE_SUPER: Role.SUPER_ADMIN,
    admin_pb2.ADMIN_ROLE_OPERATOR: Role.OPERATOR,
    admin_pb2.ADMIN_ROLE_AUDITOR: Role.AUDITOR,
}


def _bucket_info(record: BucketRecord) -> admin_pb2.BucketInfo:
    return admin_pb2.BucketInfo(
        bucket_id=record.bucket_id,
        username=record.owner,
        quota_bytes=record.quota_bytes,
        used_bytes=record.used_bytes,
        created_at=convert.timestamp(record.created_at),
        account_deleted=not record.user_id,
        immutable_seconds=record.immutable_seconds,
    )


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    def __init__(
        self,
        accounts: AccountStore,
        profiles: ProfileStore,
        policies: PolicyStore,
        jobs: JobStore,
        router: CommandRouter,
        *,
        buckets: BucketStore | None = None,
    ) -> None:
        self._accounts = accounts
        self._profiles = profiles
        self._policies = policies
        self._jobs = jobs
        self._auth = Authenticator(accounts)
        self._router = router
        self._buckets = buckets

    @handles_errors
    async def AddUser(self, request: admin_pb2.AddUserRequest, context: Ctx) -> admin_pb2.UserInfo:
        admin = await self._auth.admin(context)
        user = await self._accounts.create_user(
            request.username,
            convert.kdf_from_proto(request.kdf),
            request.auth_key,
            role=_ROLES.get(request.role, Role.USER),
            max_devices=request.max_devices,
        )
        await self._accounts.audit(
            admin.username, "user.add", request.username, source=peer_address(context)
        )
        return convert.user_to_proto(user)

    @handles_errors
    async def ListUsers(
        self, request: admin_pb2.ListUsersRequest, context: Ctx
    ) -> admin_pb2.ListUsersReply:
        await self._auth.admin(context)
        users = await self._accounts.list_users()
        return admin_pb2.ListUsersReply(users=[convert.user_to_proto(u) for u in users])

    @handles_errors
    async def DeleteUser(
        self, request: admin_pb2.DeleteUserRequest, context: Ctx
    ) -> admin_pb2.DeleteUserReply:
        admin = await self._auth.admin(context)
        if request.username == admin.username:
            raise InvalidRequestError("an administrator cannot delete their own account")
        devices = await self._accounts.list_devices(username=request.username)
        bucket_ids = await self._orphan_buckets(request.username)
        await self._accounts.delete_user(request.username)
        for device in devices:
            await self._router.close_everywhere(device.device_id)
        freed, kept = await self._delete_buckets([] if request.keep_data else bucket_ids)
        if request.keep_data:
            details = f"kept {len(bucket_ids)} bucket(s)"
        else:
            details = f"deleted {len(bucket_ids) - len(kept)} bucket(s), {freed} bytes"
            if kept:
                details += (
                    f"; kept {len(kept)} immutable bucket(s) still under protection:"
                    f" {', '.join(kept)}"
                )
        await self._accounts.audit(
            admin.username,
            "user.delete",
            request.username,
            source=peer_address(context),
            details=details,
        )
        return admin_pb2.DeleteUserReply(kept_bucket_ids=bucket_ids if request.keep_data else kept)

    @handles_errors
    async def ResetUserTotp(
        self, request: admin_pb2.ResetUserTotpRequest, context: Ctx
    ) -> admin_pb2.ResetUserTotpReply:
        admin = await self._auth.admin(context)
        await audited_totp_reset(self._accounts, admin.username, request.username, context)
        return admin_pb2.ResetUserTotpReply()

    @handles_errors
    async def ResetPassword(
        self, request: admin_pb2.ResetPasswordRequest, context: Ctx
    ) -> admin_pb2.ResetPasswordReply:
        admin = await self._auth.admin(context)
        source = peer_address(context)
        try:
            reset = await self._accounts.reset_password(
                request.username,
                convert.kdf_from_proto(request.kdf),
                request.auth_key,
                force=request.force,
                revoke_devices=request.revoke_devices,
            )
        except ServerError as e:
            await self._accounts.audit(
                admin.username,
                "user.reset_password",
                request.username,
                source=source,
                success=False,
                details=e.message,
            )
            raise
        revoked = len(reset.revoked_devices)
        for device_id in reset.revoked_devices:
            await self._router.close_everywhere(device_id)
        details = (
            ("forced; " if request.force else "")
            + (f"revoked {revoked} device(s); " if request.revoke_devices else "")
            + "old backups unreadable without the old password"
        )
        await self._accounts.audit(
            admin.username, "user.reset_password", request.username, source=source, details=details
        )
        # No admin-assisted recovery exists: the server never holds a usable vault key.
        return admin_pb2.ResetPasswordReply(data_kept_readable=False, devices_revoked=revoked)

    @handles_errors
    async def GetUserProfile(
        self, request: admin_pb2.GetUserProfileRequest, context: Ctx
    ) -> common_pb2.Profile:
        await self._auth.admin(context)
        user_id = await self._accounts.user_id(request.username)
        # Administrators see the profile without the vault secrets.
        view = await self._profiles.get(user_id, reveal_secrets=False)
        return convert.profile_to_proto(view)

    @handles_errors
    async def PutPolicy(self, request: common_pb2.Policy, context: Ctx) -> common_pb2.Policy:
        admin = await self._auth.admin(context)
        document_bounds.check(request, what="the policy")
        policy = await self._policies.put(convert.policy_from_proto(request))
        action = "policy.edit" if request.policy_id else "policy.create"
        await self._accounts.audit(
            admin.username,
            action,
            policy.policy_id,
            source=peer_address(context),
            details=f"{policy.name} v{policy.version}"
            + (" (default)" if policy.is_default else ""),
        )
        return convert.policy_to_proto(policy)

    @handles_errors
    async def ListPolicies(
        self, request: admin_pb2.ListPoliciesRequest, context: Ctx
    ) -> admin_pb2.ListPoliciesReply:
        await self._auth.admin(context)
        policies = await self._policies.all()
        return admin_pb2.ListPoliciesReply(policies=[convert.policy_to_proto(p) for p in policies])

    @handles_errors
    async def DeletePolicy(
        self, request: admin_pb2.DeletePolicyRequest, context: Ctx
    ) -> admin_pb2.DeletePolicyReply:
        admin = await self._auth.admin(context)
        validation.text(request.policy_id, field="the policy id", max_len=validation.NAME_MAX)
        policy = await self._policies.delete(request.policy_id)
        await self._accounts.audit(
            admin.username,
            "policy.delete",
            request.policy_id,
            source=peer_address(context),
            details=policy.name,
        )
        return admin_pb2.DeletePolicyReply()

    @handles_errors
    async def AssignPolicy(
        self, request: admin_pb2.AssignPolicyRequest, context: Ctx
    ) -> admin_pb2.AssignPolicyReply:
        admin = await self._auth.admin(context)
        validation.username(request.username)
        validation.text(request.policy_id, field="the policy id", max_len=validation.NAME_MAX)
        await self._policies.assign(request.username, request.policy_id or None)
        await self._accounts.audit(
            admin.username,
            "policy.assign",
            request.username,
            source=peer_address(context),
            details=request.policy_id or "none (default policy applies)",
        )
        return admin_pb2.AssignPolicyReply()

    @handles_errors
    async def ListJobs(
        self, request: control_pb2.JobFilter, context: Ctx
    ) -> control_pb2.ListAccountJobsReply:
        await self._auth.admin(context)
        query = convert.job_query_from_proto(request)
        if query.username:
            await self._accounts.user_id(query.username)  # NotFound for a typo
        return convert.job_page_to_proto(await self._jobs.find(query))

    @handles_errors
    async def GetJobLog(
        self, request: admin_pb2.GetJobLogRequest, context: Ctx
    ) -> admin_pb2.GetJobLogReply:
        await self._auth.admin(context)
        job, lines = await self._jobs.log(request.job_id)
        return admin_pb2.GetJobLogReply(
            job=convert.job_to_proto(job), entries=[convert.log_to_proto(x) for x in lines]
        )

    @handles_errors
    async def ListDevices(
        self, request: admin_pb2.ListDevicesRequest, context: Ctx
    ) -> admin_pb2.ListDevicesReply:
        await self._auth.admin(context)
        if request.username:
            await self._accounts.user_id(request.username)  # NotFound for a typo
        devices = await self._accounts.list_devices(
            username=request.username or None, online_only=request.online_only
        )
        return admin_pb2.ListDevicesReply(devices=[convert.device_to_proto(d) for d in devices])

    @handles_errors
    async def RevokeDevice(
        self, request: admin_pb2.RevokeDeviceRequest, context: Ctx
    ) -> admin_pb2.RevokeDeviceReply:
        admin = await self._auth.admin(context)
        await self._accounts.revoke_device(request.device_id)
        await self._router.close_everywhere(request.device_id)
        await self._accounts.audit(
            admin.username, "device.revoke", request.device_id, source=peer_address(context)
        )
        return admin_pb2.RevokeDeviceReply()

    @handles_errors
    async def Dispatch(
        self, request: admin_pb2.DispatchRequest, context: Ctx
    ) -> control_pb2.CommandReply:
        admin = await self._auth.admin(context)
        if not request.HasField("command") or request.command.WhichOneof("action") is None:
            raise InvalidRequestError("a dispatch needs a command")
        validation.device_id(request.device_id)
        document_bounds.check(request.command, what="the command")
        action = request.command.WhichOneof("action") or ""
        source = peer_address(context)
        details = command_facts.details_of(request.command)
        document: dict[str, Any] = {}
        try:
            owner = await self._accounts.device_owner(request.device_id)
        except NotFoundError:
            raise NotFoundError(
                f"no device has the id {request.device_id!r}; 'comet-admin device list'"
                " shows every device with its id"
            ) from None
        if action in command_facts.NEEDS_PROFILE:
            document = (await self._profiles.get(owner, reveal_secrets=False)).document
        private = not profile_document.allows_admin_view_files(document)
        try:
            facts = command_facts.facts_of(request.command, document)
            authorization.require(
                authorization.caller_of(admin),
                authorization.command_action(facts),
                who=admin.username,
            )
            if facts.shows_files and private:
                # Checked here as well as on the device: the user's privacy setting
                # must hold even against an agent that would answer.
                raise PermissionDeniedError(
                    "the user does not allow administrators to view files on their devices "
                    f"(a {action} command would show names or content of their files)"
                )
        except ServerError as e:
            await self._accounts.audit(
                admin.username,
                f"dispatch.{action}",
                request.device_id,
                source=source,
                success=False,
                details=f"{details} refused: {e.message}",
            )
            raise
        # Audited after the send, with its real outcome (an offline device: failed).
        audit = functools.partial(
            audited, self._accounts, actor=admin.username, action=f"dispatch.{action}",
            target=request.device_id, context=context, details=details,
        )  # fmt: skip
        if action == "drop_connection":
            # Closing the server's side makes the agent reconnect.
            await audit(self._router.drop(request.device_id))
            return control_pb2.CommandReply(done=control_pb2.Empty())
        if action == "apply_retention":
            view = await self._profiles.get(owner, reveal_secrets=False)
            await attach_delete_grant(
                request.command, role=admin.role, device_id=request.device_id,
                profile_document=view.document, buckets=self._buckets,
            )  # fmt: skip
        timeout = float(request.timeout_seconds or 60)
        reply = await audit(
            self._router.send(request.device_id, request.command, timeout=min(timeout, 120)),
            refused=lambda r: f"the device answered: {r.error}" if r.error else "",
        )
        if request.wait and reply.HasField("job_started") and not reply.error:
            job = await self._wait_for_job(reply.job_started.job_id, timeout)
            reply.job_started.job.CopyFrom(convert.job_to_proto(job))
        return command_facts.redact_private(reply) if private else reply

    async def _wait_for_job(self, job_id: str, timeout: float) -> JobRecord:
        """Follow a dispatched job through the device's reports until it ends. The
        reports reach the database from whichever instance the device talks to."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                job, _ = await self._jobs.log(job_id)
                if not (6000 <= int(job.status) < 7000):
                    return job
            except NotFoundError:
                pass  # the device has not reported the job yet
            if asyncio.get_running_loop().time() > deadline:
                raise DeviceOfflineError(
                    f"job {job_id} did not end within {timeout:.0f} s; it may still be running"
                )
            await asyncio.sleep(0.5)

    @handles_errors
    async def ListAudit(
        self, request: admin_pb2.ListAuditRequest, context: Ctx
    ) -> admin_pb2.ListAuditReply:
        await self._auth.admin(context)
        events = await self._accounts.list_audit(action=request.action, limit=request.limit)
        return admin_pb2.ListAuditReply(
            events=[
                admin_pb2.AuditEvent(
                    event_id=e.id,
                    time=convert.timestamp(e.time),
                    actor=e.actor,
                    action=e.action,
                    target=e.target,
                    source_address=e.source_address,
                    success=e.success,
                    details=e.details,
                )
                for e in events
            ]
        )

    # ------------------------------------------------------------- buckets

    def _bucket_store(self) -> BucketStore:
        if self._buckets is None:
            raise NotFoundError("this server hosts no buckets")
        return self._buckets

    async def _orphan_buckets(self, username: str) -> list[str]:
        if self._buckets is None:
            return []
        user_id = await self._accounts.user_id(username)
        return await self._buckets.orphan_buckets(user_id, username)

    async def _delete_buckets(self, bucket_ids: list[str]) -> tuple[int, list[str]]:
        """Delete the buckets; returns the bytes freed and the ids of those kept
        because they are immutable and still protected (listed as the user's former)."""
        freed = 0
        kept: list[str] = []
        for bucket_id in bucket_ids:
            try:
                freed += await self._bucket_store().delete_bucket(bucket_id)
            except NotFoundError:
                continue  # deleted meanwhile
            except ObjectProtectedError:
                kept.append(bucket_id)
        return freed, kept

    @handles_errors
    async def ListBuckets(
        self, request: admin_pb2.ListBucketsRequest, context: Ctx
    ) -> admin_pb2.ListBucketsReply:
        await self._auth.admin(context)
        store = self._bucket_store()
        records = await store.list_buckets(username=request.username or None)
        infos = []
        for record in records:
            info = _bucket_info(record)
            if record.immutable_seconds:
                trashed = await store.trash_entries(record.bucket_id)
                info.trash_objects = len(trashed)
                info.trash_bytes = sum(e.size for e in trashed)
            infos.append(info)
        return admin_pb2.ListBucketsReply(buckets=infos)

    @handles_errors
    async def DeleteBucket(
        self, request: admin_pb2.DeleteBucketRequest, context: Ctx
    ) -> admin_pb2.DeleteBucketReply:
        admin = await self._auth.admin(context)
        freed = await self._bucket_store().delete_bucket(request.bucket_id)
        await self._accounts.audit(
            admin.username,
            "bucket.delete",
            request.bucket_id,
            source=peer_address(context),
            details=f"{freed} bytes",
        )
        return admin_pb2.DeleteBucketReply(freed_bytes=freed)

    @handles_errors
    async def GrantBucketDelete(
        self, request: admin_pb2.GrantBucketDeleteRequest, context: Ctx
    ) -> control_pb2.DeleteGrant:
        admin = await self._auth.admin(context)
        grant = await self._bucket_store().issue_grant(request.bucket_id)
        await self._accounts.audit(
            admin.username, "bucket.delete_grant", request.bucket_id,
            source=peer_address(context), details="retention started by an administrator",
        )  # fmt: skip
        return control_pb2.DeleteGrant(
            grant=grant.token, expires_at=convert.timestamp(grant.expires_at)
        )

    @handles_errors
    async def UndeleteObjects(
        self, request: admin_pb2.UndeleteObjectsRequest, context: Ctx
    ) -> admin_pb2.UndeleteObjectsReply:
        admin = await self._auth.admin(context)
        restored = await self._bucket_store().undelete(
            request.bucket_id, list(request.keys), every=request.all
        )
        await self._accounts.audit(
            admin.username, "bucket.undelete", request.bucket_id,
            source=peer_address(context), details=f"{len(restored)} object(s) restored",
        )  # fmt: skip
        return admin_pb2.UndeleteObjectsReply(restored=restored)
