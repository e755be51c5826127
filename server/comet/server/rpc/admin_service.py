"""AdminService: users, devices, policies, job history and remote commands. Every
method is checked against the permission table (``comet.server.authorization``) by
the guard before it runs; Dispatch checks each command again by what it would do."""

from __future__ import annotations

from typing import Any

import grpc

from comet.server.administration import Administration
from comet.server.buckets.store import BucketRecord, BucketStore
from comet.server.errors import (
    InvalidRequestError,
    NotFoundError,
)
from comet.server.rpc import convert
from comet.server.rpc.auth_context import Authenticator, peer_address
from comet.server.rpc.errors import handles_errors
from comet.server.rpc.routing import CommandRouter
from comet.server.store.accounts import AccountStore, Role
from comet.server.store.api_keys import ApiKeyRecord, ApiKeyStore
from comet.server.store.jobs import JobStore
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


_ROLE_PROTO = {
    role: proto for proto, role in _ROLES.items() if proto != admin_pb2.ADMIN_ROLE_UNSPECIFIED
}


def _api_key_info(record: ApiKeyRecord) -> admin_pb2.ApiKeyInfo:
    info = admin_pb2.ApiKeyInfo(
        key_id=record.key_id,
        name=record.name,
        role=_ROLE_PROTO[record.role],
        prefix=record.prefix,
        created_at=convert.timestamp(record.created_at),
        revoked=record.revoked,
    )
    if record.last_used_at is not None:
        info.last_used_at.CopyFrom(convert.timestamp(record.last_used_at))
    return info


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
        api_keys: ApiKeyStore | None = None,
    ) -> None:
        self._accounts = accounts
        self._profiles = profiles
        self._policies = policies
        self._jobs = jobs
        self._auth = Authenticator(accounts)
        self._router = router
        self._buckets = buckets
        self._api_keys = api_keys
        self._admin = Administration(
            accounts, profiles, policies, jobs, router, buckets, api_keys=api_keys
        )

    @handles_errors
    async def AddUser(self, request: admin_pb2.AddUserRequest, context: Ctx) -> admin_pb2.UserInfo:
        admin = await self._auth.admin(context)
        user = await self._admin.add_user(
            admin,
            request.username,
            convert.kdf_from_proto(request.kdf),
            request.auth_key,
            role=_ROLES.get(request.role, Role.USER),
            max_devices=request.max_devices,
            source=peer_address(context),
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
        kept = await self._admin.delete_user(
            admin, request.username, keep_data=request.keep_data, source=peer_address(context)
        )
        return admin_pb2.DeleteUserReply(kept_bucket_ids=kept)

    @handles_errors
    async def ResetUserTotp(
        self, request: admin_pb2.ResetUserTotpRequest, context: Ctx
    ) -> admin_pb2.ResetUserTotpReply:
        admin = await self._auth.admin(context)
        await self._admin.reset_totp(admin, request.username, source=peer_address(context))
        return admin_pb2.ResetUserTotpReply()

    @handles_errors
    async def ResetPassword(
        self, request: admin_pb2.ResetPasswordRequest, context: Ctx
    ) -> admin_pb2.ResetPasswordReply:
        admin = await self._auth.admin(context)
        reset = await self._admin.reset_password(
            admin,
            request.username,
            convert.kdf_from_proto(request.kdf),
            request.auth_key,
            force=request.force,
            revoke_devices=request.revoke_devices,
            source=peer_address(context),
        )
        # No admin-assisted recovery exists: the server never holds a usable vault key.
        return admin_pb2.ResetPasswordReply(
            data_kept_readable=False, devices_revoked=len(reset.revoked_devices)
        )

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
        policy = await self._admin.put_policy(admin, request, source=peer_address(context))
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
        await self._admin.delete_policy(admin, request.policy_id, source=peer_address(context))
        return admin_pb2.DeletePolicyReply()

    @handles_errors
    async def AssignPolicy(
        self, request: admin_pb2.AssignPolicyRequest, context: Ctx
    ) -> admin_pb2.AssignPolicyReply:
        admin = await self._auth.admin(context)
        await self._admin.assign_policy(
            admin, request.username, request.policy_id, source=peer_address(context)
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
        await self._admin.revoke_device(admin, request.device_id, source=peer_address(context))
        return admin_pb2.RevokeDeviceReply()

    @handles_errors
    async def Dispatch(
        self, request: admin_pb2.DispatchRequest, context: Ctx
    ) -> control_pb2.CommandReply:
        admin = await self._auth.admin(context)
        if not request.HasField("command"):
            raise InvalidRequestError("a dispatch needs a command")
        return await self._admin.dispatch(
            admin,
            request.device_id,
            request.command,
            source=peer_address(context),
            timeout=float(request.timeout_seconds or 60),
            wait=request.wait,
        )

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

    # ------------------------------------------------------------- API keys

    @handles_errors
    async def CreateApiKey(
        self, request: admin_pb2.CreateApiKeyRequest, context: Ctx
    ) -> admin_pb2.CreateApiKeyReply:
        admin = await self._auth.admin(context)
        role = _ROLES.get(request.role, Role.USER)
        created = await self._admin.create_api_key(
            admin,
            name=request.name,
            role=admin.role if role is Role.USER else role,
            source=peer_address(context),
        )
        return admin_pb2.CreateApiKeyReply(info=_api_key_info(created.record), key=created.key)

    @handles_errors
    async def ListApiKeys(
        self, request: admin_pb2.ListApiKeysRequest, context: Ctx
    ) -> admin_pb2.ListApiKeysReply:
        admin = await self._auth.admin(context)
        keys = await self._admin.api_keys(admin)
        return admin_pb2.ListApiKeysReply(keys=[_api_key_info(k) for k in keys])

    @handles_errors
    async def RevokeApiKey(
        self, request: admin_pb2.RevokeApiKeyRequest, context: Ctx
    ) -> admin_pb2.RevokeApiKeyReply:
        admin = await self._auth.admin(context)
        await self._admin.revoke_api_key(admin, request.key_id, source=peer_address(context))
        return admin_pb2.RevokeApiKeyReply()
