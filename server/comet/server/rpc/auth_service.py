"""AuthService: pre-login, login and logout for devices and admin tools, password
changes and two-factor enrolment."""

from __future__ import annotations

from typing import Any

import grpc

from comet.server.rpc import convert
from comet.server.rpc.auth_context import Authenticator, bearer_token
from comet.server.rpc.client_address import ClientAddresses
from comet.server.rpc.errors import handles_errors
from comet.server.store.accounts import AccountStore
from comet.server.store.profiles import ProfileStore
from comet.v1 import control_pb2, control_pb2_grpc

Ctx = grpc.aio.ServicerContext[Any, Any]


class AuthService(control_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        accounts: AccountStore,
        profiles: ProfileStore,
        addresses: ClientAddresses | None = None,
    ) -> None:
        self._accounts = accounts
        self._profiles = profiles
        self._auth = Authenticator(accounts)
        self._addresses = addresses or ClientAddresses()

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
            source=self._addresses.of(context),
            admin_session=request.admin_session,
            device_id=request.device_id,
            registration=convert.registration_from_proto(request.registration),
            totp_code=request.totp_code,
        )
        if result.device_registered_now:
            await self._profiles.add_policy_defaults(result.user_id, result.device_id)
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

    @handles_errors
    async def ChangePassword(
        self, request: control_pb2.ChangePasswordRequest, context: Ctx
    ) -> control_pb2.ChangePasswordReply:
        principal = await self._auth.device(context)
        await self._accounts.change_password(
            principal.user_id,
            convert.kdf_from_proto(request.new_kdf),
            request.new_auth_key,
            dict(request.rewrapped_vault_keys),
            current_auth_key=request.current_auth_key,
            source=self._addresses.of(context),
        )
        return control_pb2.ChangePasswordReply()

    @handles_errors
    async def BeginTotpEnrolment(
        self, request: control_pb2.BeginTotpEnrolmentRequest, context: Ctx
    ) -> control_pb2.BeginTotpEnrolmentReply:
        principal = await self._auth.account(context)
        enrolment = await self._accounts.begin_totp_enrolment(principal.user_id)
        return control_pb2.BeginTotpEnrolmentReply(
            secret=enrolment.secret, otpauth_uri=enrolment.uri
        )

    @handles_errors
    async def ConfirmTotpEnrolment(
        self, request: control_pb2.ConfirmTotpEnrolmentRequest, context: Ctx
    ) -> control_pb2.ConfirmTotpEnrolmentReply:
        principal = await self._auth.account(context)
        await self._accounts.confirm_totp_enrolment(
            principal.user_id, request.code, source=self._addresses.of(context)
        )
        return control_pb2.ConfirmTotpEnrolmentReply()

    @handles_errors
    async def DisableTotp(
        self, request: control_pb2.DisableTotpRequest, context: Ctx
    ) -> control_pb2.DisableTotpReply:
        principal = await self._auth.account(context)
        await self._accounts.disable_totp(
            principal.user_id, request.code, source=self._addresses.of(context)
        )
        return control_pb2.DisableTotpReply()
