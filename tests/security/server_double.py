"""A test double of the Comet Server for an agent: it forwards every call to a real
server (so the agent logs in, fetches its profile and reports jobs for real), but
holds the agent's live stream itself and lets a test push any raw ``Command`` down
it, bypassing every check the server would make, and read the agent's reply."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import grpc

from comet.v1 import admin_pb2, control_pb2, storage_pb2

T = TypeVar("T")
CONNECT = "/comet.v1.AgentService/Connect"


def _kinds() -> dict[str, tuple[bool, bool]]:
    kinds = {}
    for module in (admin_pb2, control_pb2, storage_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                kinds[f"/{service.full_name}/{m.name}"] = (m.client_streaming, m.server_streaming)
    return kinds


class _LiveStream:
    def __init__(self) -> None:
        self.outgoing: asyncio.Queue[control_pb2.ServerMessage | None] = asyncio.Queue()
        self.waiting: dict[str, asyncio.Future[control_pb2.CommandReply]] = {}


class ServerDouble:
    def __init__(self, upstream: str, credentials: grpc.ChannelCredentials | None = None) -> None:
        """``upstream`` is the real server's URL; give ``credentials`` when it serves
        TLS (the double itself listens in plaintext on loopback)."""
        self._upstream_target = (
            upstream.removeprefix("http://").removeprefix("https://").rstrip("/")
        )
        self._credentials = credentials
        self._kinds = _kinds()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._streams: list[_LiveStream] = []
        self.url = self._run(self._start())

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    async def _start(self) -> str:
        if self._credentials is None:
            self._channel = grpc.aio.insecure_channel(self._upstream_target)
        else:
            self._channel = grpc.aio.secure_channel(self._upstream_target, self._credentials)
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((_Handler(self),))
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return f"http://127.0.0.1:{port}/"

    def stop(self) -> None:
        async def stop() -> None:
            await self._server.stop(0)
            await self._channel.close()

        self._run(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # ------------------------------------------------------------ what tests call

    def connected(self) -> bool:
        return bool(self._streams)

    def inject(self, command: control_pb2.Command, timeout: float = 30) -> control_pb2.CommandReply:
        """Sends ``command`` down the agent's live stream; returns the agent's reply."""

        async def send() -> control_pb2.CommandReply:
            stream = self._streams[-1]
            command.request_id = uuid.uuid4().hex
            future: asyncio.Future[control_pb2.CommandReply] = self._loop.create_future()
            stream.waiting[command.request_id] = future
            await stream.outgoing.put(control_pb2.ServerMessage(command=command))
            return await asyncio.wait_for(future, timeout)

        return self._run(send(), timeout + 5)

    # ------------------------------------------------------------ forwarding

    def metadata(self, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[tuple[str, str], ...]:
        return tuple(
            (k, v)
            for k, v in context.invocation_metadata() or ()
            if isinstance(v, str) and (k == "authorization" or k.startswith("x-comet"))
        )

    async def unary(
        self, method: str, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        try:
            reply: bytes = await self._channel.unary_unary(method)(
                request, metadata=self.metadata(context), timeout=60
            )
        except grpc.aio.AioRpcError as e:
            await context.abort(e.code(), e.details() or "")
        return reply

    async def connect(
        self,
        requests: AsyncIterator[control_pb2.AgentMessage],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[control_pb2.ServerMessage]:
        stream = _LiveStream()

        async def upward() -> AsyncIterator[control_pb2.AgentMessage]:
            async for message in requests:
                reply = message.reply if message.HasField("reply") else None
                if reply is not None and reply.request_id in stream.waiting:
                    stream.waiting.pop(reply.request_id).set_result(reply)
                    continue
                yield message

        call = self._channel.stream_stream(
            CONNECT,
            request_serializer=control_pb2.AgentMessage.SerializeToString,
            response_deserializer=control_pb2.ServerMessage.FromString,
        )(upward(), metadata=self.metadata(context))

        async def downward() -> None:
            try:
                async for message in call:
                    await stream.outgoing.put(message)
            except grpc.aio.AioRpcError:
                pass
            await stream.outgoing.put(None)

        pump = asyncio.create_task(downward())
        self._streams.append(stream)
        try:
            while (message := await stream.outgoing.get()) is not None:
                yield message
        finally:
            self._streams.remove(stream)
            pump.cancel()
            call.cancel()


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, double: ServerDouble) -> None:
        self._double = double

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = details.method  # type: ignore[attr-defined]
        if method == CONNECT:
            return grpc.stream_stream_rpc_method_handler(
                self._double.connect,
                request_deserializer=control_pb2.AgentMessage.FromString,
                response_serializer=control_pb2.ServerMessage.SerializeToString,
            )
        if self._double._kinds.get(method) == (False, False):

            async def forward(request: bytes, context: Any) -> bytes:
                return await self._double.unary(method, request, context)

            return grpc.unary_unary_rpc_method_handler(forward)
        return None
