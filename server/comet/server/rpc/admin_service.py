"""AdminService: users, devices and remote commands, each checked against the
caller's admin role."""

from __future__ import annotations

from typing import Any

import grpc

from comet.server.errors import InvalidRequestError
from comet.server.rpc import convert
from comet.server.rpc.auth_context import ANY_ADMIN, OPERATORS, SUPER, Authenticator, peer_address
from comet.server.rpc.errors import handles_errors
from comet.server.rpc.live import LiveRegistry
from comet.server.store.accounts import AccountStore, Role
from comet.v1 import admin_pb2, admin_pb2_grpc, control_pb2

Ctx = grpc.aio.ServicerContext[Any, Any]

_ROLES = {
    admin_pb2.ADMIN_ROLE_UNSPECIFIED: Role.USER,
    admin_pb2.ADMIN_ROLE_USER: Role.USER,
    admin_pb2.ADMIN_ROLE_SUPER: Role.SUPER_ADMIN,
    admin_pb2.ADMIN_ROLE_OPERATOR: Role.OPERATOR,
    admin_pb2.ADMIN_ROLE_AUDITOR: Role.AUDITOR,
}


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, accounts: AccountStore, registry: LiveRegistry) -> None:
        self._accounts = accounts
        self._auth = Authenticator(accounts)
        self._registry = registry

    @handles_errors
    async def AddUser(self, request: admin_pb2.AddUserRequest, context: Ctx) -> admin_pb2.UserInfo:
        admin = await self._auth.admin(context, allowed=SUPER)
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
        await self._auth.admin(context, allowed=ANY_ADMIN)
        users = await self._accounts.list_users()
        return admin_pb2.ListUsersReply(users=[convert.user_to_proto(u) for u in users])

    @handles_errors
    async def DeleteUser(
        self, request: admin_pb2.DeleteUserRequest, context: Ctx
    ) -> admin_pb2.DeleteUserReply:
        admin = await self._auth.admin(context, allowed=SUPER)
        if request.username == admin.username:
            raise InvalidRequestError("an administrator cannot delete their own account")
        devices = await self._accounts.list_devices(username=request.username)
        await self._accounts.delete_user(request.username)
        for device in devices:
            self._registry.close_device(device.device_id)
        await self._accounts.audit(
            admin.username, "user.delete", request.username, source=peer_address(context)
        )
        return admin_pb2.DeleteUserReply()

    @handles_errors
    async def ListDevices(
        self, request: admin_pb2.ListDevicesRequest, context: Ctx
    ) -> admin_pb2.ListDevicesReply:
        await self._auth.admin(context, allowed=ANY_ADMIN)
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
        admin = await self._auth.admin(context, allowed=SUPER)
        await self._accounts.revoke_device(request.device_id)
        self._registry.close_device(request.device_id)
        await self._accounts.audit(
            admin.username, "device.revoke", request.device_id, source=peer_address(context)
        )
        return admin_pb2.RevokeDeviceReply()

    @handles_errors
    async def Dispatch(
        self, request: admin_pb2.DispatchRequest, context: Ctx
    ) -> control_pb2.CommandReply:
        admin = await self._auth.admin(context, allowed=OPERATORS)
        if not request.HasField("command") or request.command.WhichOneof("action") is None:
            raise InvalidRequestError("a dispatch needs a command")
        action = request.command.WhichOneof("action") or ""
        await self._accounts.audit(
            admin.username, f"dispatch.{action}", request.device_id, source=peer_address(context)
        )
        if action == "drop_connection":
            # Closing our side makes the agent reconnect.
            if self._registry.get(request.device_id) is None:
                await self._registry.send(request.device_id, request.command, timeout=0)
            self._registry.close_device(request.device_id)
            return control_pb2.CommandReply(done=control_pb2.Empty())
        timeout = float(request.timeout_seconds or 60)
        return await self._registry.send(request.device_id, request.command, timeout=timeout)

    @handles_errors
    async def ListAudit(
        self, request: admin_pb2.ListAuditRequest, context: Ctx
    ) -> admin_pb2.ListAuditReply:
        await self._auth.admin(context, allowed=frozenset({Role.SUPER_ADMIN, Role.AUDITOR}))
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
