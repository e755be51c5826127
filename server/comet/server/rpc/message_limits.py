"""A small size limit for the requests of callers who have not shown a credential.

gRPC's ``grpc.max_receive_message_length`` is one limit for every method, and
bucket uploads need megabytes. Here each unary request is checked before it is
decoded: AuthService calls (login and friends) and any call without an
``authorization`` header get ``UNAUTHENTICATED_LIMIT`` bytes at most. Oversized
requests are refused RESOURCE_EXHAUSTED, undecodable ones INVALID_ARGUMENT, both
without the request reaching a servicer.

gRPC still receives a request whole (up to the global limit) before it can be
measured, so a burst of oversized calls briefly takes memory, and glibc keeps
freed memory in its arenas: after refusing one, the memory is handed back to the
system (``malloc_trim``), at most once a second."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc
from google.protobuf.message import DecodeError

from comet.server.errors import ServerError, ThrottledError
from comet.server.rpc.errors import (
    ERROR_CODE_KEY,
    UNDECODABLE,
    UndecodableRequestError,
    status_for,
)

log = logging.getLogger(__name__)

UNAUTHENTICATED_LIMIT = 64 * 1024
# Memory freed by refused requests is handed back this long after the last one.
TRIM_DELAY_SECONDS = 1.0
# Every method here is callable before login, so all share the small limit.
SMALL_SERVICES = ("/comet.v1.AuthService/",)

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class RequestTooLargeError(ThrottledError):
    code = "request_too_large"


class MessageLimitInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, *, limit: int = UNAUTHENTICATED_LIMIT) -> None:
        self._limit = limit
        self._trimmer = MemoryTrimmer()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method or ""
        if not (method.startswith(SMALL_SERVICES) or not _has_credential(handler_call_details)):
            return handler
        return grpc.unary_unary_rpc_method_handler(
            _checked(
                cast(Behavior, handler.unary_unary),
                handler.request_deserializer,
                self._limit,
                self._trimmer,
            ),
            request_deserializer=None,  # raw bytes: measured, then decoded here
            response_serializer=handler.response_serializer,
        )


def _has_credential(details: grpc.HandlerCallDetails) -> bool:
    return any(key == "authorization" for key, _ in details.invocation_metadata or ())


def _checked(
    behavior: Behavior,
    deserialize: Callable[[bytes], Any] | None,
    limit: int,
    trimmer: MemoryTrimmer,
) -> Behavior:
    async def checked(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        request, error = _decode(raw, deserialize, limit)
        # Nothing may keep the raw bytes alive once decoded or refused: a traceback
        # holding this frame would pin megabytes until the cyclic GC happens by.
        del raw
        if error is not None:
            if isinstance(error, RequestTooLargeError):
                trimmer.soon()
            context.set_trailing_metadata(((ERROR_CODE_KEY, error.code),))
            await context.abort(status_for(error), error.message)
        return await behavior(request, context)

    return checked


def _decode(
    raw: bytes, deserialize: Callable[[bytes], Any] | None, limit: int
) -> tuple[Any, ServerError | None]:
    """The request, or the error to answer with (made here, never raised, so that
    no traceback refers to ``raw``)."""
    if len(raw) > limit:
        return None, RequestTooLargeError(
            f"the request is {len(raw)} bytes; before login at most {limit} are accepted"
        )
    if deserialize is None:
        return raw, None
    try:
        return deserialize(raw), None
    except DecodeError:
        pass
    return None, UndecodableRequestError(UNDECODABLE)


class MemoryTrimmer:
    """Returns freed heap memory to the system a moment after a big request was
    dropped, at most once per ``TRIM_DELAY_SECONDS`` and once more after the last
    such request; a no-op where the C library has no ``malloc_trim``."""

    def __init__(self) -> None:
        self._trim: Callable[[int], int] | None = _malloc_trim()
        self._scheduled = False
        self._last_request = 0.0

    def soon(self) -> None:
        if self._trim is None:
            return
        loop = asyncio.get_running_loop()
        self._last_request = loop.time()
        if not self._scheduled:
            self._scheduled = True
            loop.call_later(TRIM_DELAY_SECONDS, self._start)

    def _start(self) -> None:
        assert self._trim is not None
        started = asyncio.get_running_loop().time()
        task = asyncio.ensure_future(asyncio.to_thread(self._trim, 0))
        task.add_done_callback(lambda t: self._done(t, started))

    def _done(self, task: asyncio.Future[int], started: float) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not return freed memory: %s", task.exception())
        self._scheduled = False
        if self._last_request >= started:  # more came meanwhile: trim after them too
            self._scheduled = True
            asyncio.get_running_loop().call_later(TRIM_DELAY_SECONDS, self._start)


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim
