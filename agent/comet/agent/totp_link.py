"""Two-factor (TOTP) enrolment for the logged-in account, from this device: the
server's AuthService calls made with the device's own credential, so enrolling never
logs in again and never registers a device."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from comet.agent.errors import AgentError
from comet.agent.state import AgentState, LoginState
from comet.agent.transport import aio_channel, rpc_error_message
from comet.v1 import control_pb2, control_pb2_grpc


class TotpError(AgentError):
    code = "totp"


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str  # base32
    uri: str  # otpauth://totp/...


class TotpLink:
    def __init__(self, state: AgentState) -> None:
        self._state = state

    async def begin(self) -> TotpEnrolment:
        """A new secret, pending until ``confirm`` (refused while 2FA is on)."""
        reply = await self._call("BeginTotpEnrolment", control_pb2.BeginTotpEnrolmentRequest())
        assert isinstance(reply, control_pb2.BeginTotpEnrolmentReply)
        return TotpEnrolment(reply.secret, reply.otpauth_uri)

    async def confirm(self, code: str) -> None:
        """Turn 2FA on with a code from the authenticator app holding the secret."""
        await self._call(
            "ConfirmTotpEnrolment", control_pb2.ConfirmTotpEnrolmentRequest(code=code.strip())
        )

    async def disable(self, code: str) -> None:
        """Turn 2FA off; needs a current code."""
        await self._call("DisableTotp", control_pb2.DisableTotpRequest(code=code.strip()))

    async def _call(self, method: str, request: object) -> object:
        login = self._login()
        channel = aio_channel(login.server, trust=login.trust)
        try:
            stub = control_pb2_grpc.AuthServiceStub(channel)
            return await getattr(stub, method)(
                request,
                metadata=(("authorization", f"Bearer {login.device_token}"),),
                timeout=30,
            )
        except grpc.aio.AioRpcError as e:
            raise TotpError(rpc_error_message(e)) from e
        finally:
            await channel.close()

    def _login(self) -> LoginState:
        login = self._state.load_login()
        if not login.logged_in:
            raise TotpError("this agent is not logged in: run 'comet login' first")
        return login
