"""A small size limit for the requests of callers who have not shown a credential.

gRPC's ``grpc.max_receive_message_length`` is one limit for every method, and
bucket uploads need megabytes. Here each unary request is checked before it is
decoded: AuthService calls (login and friends) and any call without an
``authorization`` header get ``UNAUTHENTICATED_LIMIT`` bytes at most. Oversized
requests are refused RESOURCE_EXHAUSTED, undecodable ones INVALID_ARGUMENT, both
without the request reaching a servicer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc
from google.protobuf.message import DecodeError

from comet.server.errors import InvalidRequestError, ServerError, ThrottledError
from comet.server.rpc.errors import ERROR_CODE_KEY, status_for

UNAUTHENTICATED_LIMIT = 64 * 1024
# Every method here is callable before login, so all share the small limit.
SMALL_SERVICES = ("/comet.v1.AuthService/",)

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class RequestTooLargeError(ThrottledError):
    code = "request_too_large"


class MessageLimitInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, *, limit: int = UNAUTHENTICATED_LIMIT) -> None:
        self._limit = limit

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
                cast(Behavior, handler.unary_unary), handler.request_deserializer, self._limit
            ),
            request_deserializer=None,  # raw bytes: measured, then decoded here
            response_serializer=handler.response_serializer,
        )


def _has_credential(details: grpc.HandlerCallDetails) -> bool:
    return any(key == "authorization" for key, _ in details.invocation_metadata or ())


def _checked(
    behavior: Behavior, deserialize: Callable[[bytes], Any] | None, limit: int
) -> Behavior:
    async def checked(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            if len(raw) > limit:
                raise RequestTooLargeError(
                    f"the request is {len(raw)} bytes; before login at most {limit} are accepted"
                )
            try:
                request = deserialize(raw) if deserialize else raw
            except DecodeError as e:
                raise InvalidRequestError("the request is not a valid message") from e
        except ServerError as e:
            context.set_trailing_metadata(((ERROR_CODE_KEY, e.code),))
            await context.abort(status_for(e), e.message)
        return await behavior(request, context)

    return checked
