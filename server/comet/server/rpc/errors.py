"""Maps server domain errors to gRPC status codes, in one place."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import grpc

from comet.server import errors

log = logging.getLogger(__name__)

STATUS: dict[type[errors.ServerError], grpc.StatusCode] = {
    errors.InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.AuthenticationError: grpc.StatusCode.UNAUTHENTICATED,
    errors.ThrottledError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    errors.ConflictError: grpc.StatusCode.ABORTED,
    errors.LimitExceededError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.DeviceOfflineError: grpc.StatusCode.UNAVAILABLE,
    errors.DatabaseSetupError: grpc.StatusCode.INTERNAL,
}

ERROR_CODE_KEY = "comet-error-code"

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def status_for(error: errors.ServerError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return grpc.StatusCode.INTERNAL


def handles_errors(fn: F) -> F:
    """Turns a ServerError raised by a unary servicer method into a gRPC status with
    the error's message and its stable code in trailing metadata."""

    @functools.wraps(fn)
    async def wrapper(
        self: object, request: object, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        try:
            return await fn(self, request, context)
        except errors.ServerError as e:
            context.set_trailing_metadata(((ERROR_CODE_KEY, e.code),))
            await context.abort(status_for(e), e.message)

    return cast(F, wrapper)
