"""The local API (``comet.v1.AgentApi``) served to the app and the CLI over a unix
socket that only its owner can open. Thin: validate, convert, call the agent."""

from __future__ import annotations

from typing import Any, Protocol

import grpc

from comet.agent.errors import AgentError
from comet.agent.transport import ServerUrlError
from comet.v1 import agent_api_pb2, agent_api_pb2_grpc

Ctx = grpc.aio.ServicerContext[Any, Any]


class AgentOperations(Protocol):
    """What the local API needs from the agent (implemented by ``service.Agent``)."""

    def status(self) -> agent_api_pb2.StatusReply: ...
    async def login(self, request: agent_api_pb2.AgentLoginRequest) -> bool: ...
    def lock(self) -> None: ...
    async def disconnect(self) -> None: ...


_STATUS = {
    ServerUrlError: grpc.StatusCode.INVALID_ARGUMENT,
}


async def _abort(context: Ctx, error: AgentError) -> None:
    code = next(
        (status for cls, status in _STATUS.items() if isinstance(error, cls)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    context.set_trailing_metadata((("comet-error-code", error.code),))
    await context.abort(code, str(error))


class LocalApi(agent_api_pb2_grpc.AgentApiServicer):
    def __init__(self, agent: AgentOperations) -> None:
        self._agent = agent

    async def Status(
        self, request: agent_api_pb2.StatusRequest, context: Ctx
    ) -> agent_api_pb2.StatusReply:
        return self._agent.status()

    async def Login(
        self, request: agent_api_pb2.AgentLoginRequest, context: Ctx
    ) -> agent_api_pb2.AgentLoginReply:
        if not request.username or not request.password:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "username and password needed")
        try:
            registered = await self._agent.login(request)
        except AgentError as e:
            await _abort(context, e)
        return agent_api_pb2.AgentLoginReply(
            status=self._agent.status(), device_registered_now=registered
        )

    async def Lock(
        self, request: agent_api_pb2.LockRequest, context: Ctx
    ) -> agent_api_pb2.StatusReply:
        self._agent.lock()
        return self._agent.status()

    async def Disconnect(
        self, request: agent_api_pb2.DisconnectRequest, context: Ctx
    ) -> agent_api_pb2.StatusReply:
        await self._agent.disconnect()
        return self._agent.status()
