"""AuthService: pre-login, login and logout for devices and admin tools."""

from __future__ import annotations

from typing import Any

import grpc

from comet.server.rpc import convert
from comet.server.rpc.auth_context import bearer_token, peer_address
from comet.server.rpc.errors import handles_errors
from comet.server.store.accounts import AccountStore
from comet.v1 import control_pb2, control_pb2_grpc

Ctx = grpc.aio.ServicerContext[Any, Any]


class AuthService(control_pb2_grpc.AuthServiceServicer):
    def __init__(self, accounts: AccountStore) -> None:
        self._accounts = accounts

    @handles_errors
    async def PreLogin(
        self, request: control_pb2.PreLoginRequest, context: Ctx
    ) -> control_pb2.PreLoginReply:
        kdf = await self._accounts.prelogin(request.username)
        return control_pb2.PreLoginReply(kdf=convert.kdf_to_proto(kdf))

    @handles_errors
    async def Login(
        self, request: control_pb2.LoginRequest, context: Ctx
    ) -> control_pb2.LoginReply:
        result = await self._accounts.login(
            request.username,
            request.auth_key,
            source=peer_address(context),
            admin_session=request.admin_session,
            device_id=request.device_id,
            registration=convert.registration_from_proto(request.registration),
        )
        return control_pb2.LoginReply(
            session_token=result.session_token,
            expires_at=convert.timestamp(result.expires_at),
            device_id=result.device_id,
            device_token=result.device_token,
            device_registered_now=result.device_registered_now,
            is_admin=result.role.is_admin,
        )

    @handles_errors
    async def Logout(
        self, request: control_pb2.LogoutRequest, context: Ctx
    ) -> control_pb2.LogoutReply:
        await self._accounts.revoke_session(bearer_token(context))
        return control_pb2.LogoutReply()
