"""Maps every failure of every RPC to a gRPC status code and one sentence, in one place.

Domain errors (``comet.server.errors``) keep their message and travel with their
stable code in the trailing metadata; an unreachable database is UNAVAILABLE with one
fixed sentence; a request that cannot be decoded is INVALID_ARGUMENT; anything else is
a bug: INTERNAL with a generic sentence and an error id that the server log ties to
the traceback. No exception text of Python, SQL or the driver ever reaches a client.

``ErrorInterceptor`` applies this to every service of the server (including ones
that raise instead of using ``handles_errors``); ``handles_errors`` is the same
mapping for use inside a servicer method.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar, cast

import grpc
from google.protobuf.message import DecodeError

from comet.server import errors
from comet.server.buckets.errors import ObjectStoreUnavailableError
from comet.server.store.availability import DatabaseFailure, classify_database_failure

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
    errors.DatabaseUnavailableError: grpc.StatusCode.UNAVAILABLE,
    errors.DatabaseSetupError: grpc.StatusCode.INTERNAL,
    ObjectStoreUnavailableError: grpc.StatusCode.UNAVAILABLE,
}

ERROR_CODE_KEY = "comet-error-code"
ERROR_ID_KEY = "comet-error-id"

DATABASE_UNAVAILABLE = "the server's database is unavailable; try again shortly"
DATABASE_BUSY = "the server's database is busy; try again shortly"
CONFLICTED = "the request conflicted with another one at the same time; try again"
UNDECODABLE = "the request could not be decoded: it is not a valid message for this call"
INTERNAL = (
    "the server failed unexpectedly (error id {error_id}); an administrator can find "
    "the details under that id in the server log"
)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
Ctx = grpc.aio.ServicerContext[Any, Any]
if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]


class UndecodableRequestError(errors.InvalidRequestError):
    """A request message whose bytes are not a valid protobuf of the call's type."""

    code = "undecodable_request"


def status_for(error: errors.ServerError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return grpc.StatusCode.INTERNAL


def one_line(text: str) -> str:
    """A client sees one line: multi-line details are joined."""
    return "; ".join(part.strip() for part in text.splitlines() if part.strip()) or text


def _passes_through(error: BaseException) -> bool:
    """Control flow of grpc/asyncio itself: an abort already sent, a cancelled call."""
    return isinstance(error, asyncio.CancelledError | grpc.aio.AbortError | GeneratorExit)


class DatabaseWatcher(Protocol):
    """Told about every database failure an RPC meets (the supervisor then checks at
    once instead of waiting for its next round) and asked whether the database is up."""

    def database_failed(self) -> None:
        """Note a failure; must not block."""

    @property
    def database_up(self) -> bool:
        """False while the database is known to be unreachable."""


def mapped(
    error: BaseException, method: str, watcher: DatabaseWatcher | None = None
) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    """The status code, sentence and trailing metadata for a failure (logging it)."""
    if isinstance(error, errors.ServerError):
        if isinstance(error, errors.DatabaseUnavailableError):
            return (
                grpc.StatusCode.UNAVAILABLE,
                DATABASE_UNAVAILABLE,
                ((ERROR_CODE_KEY, error.code),),
            )
        return status_for(error), one_line(error.message), ((ERROR_CODE_KEY, error.code),)
    failure = classify_database_failure(error)
    if failure is DatabaseFailure.UNAVAILABLE:
        if watcher is not None:
            watcher.database_failed()
        log.warning("%s: the database is unavailable (%s)", method, _short(error))
        return (
            grpc.StatusCode.UNAVAILABLE,
            DATABASE_UNAVAILABLE,
            ((ERROR_CODE_KEY, errors.DatabaseUnavailableError.code),),
        )
    if failure is DatabaseFailure.BUSY:
        log.warning("%s: the database is busy (%s)", method, _short(error))
        return grpc.StatusCode.UNAVAILABLE, DATABASE_BUSY, ((ERROR_CODE_KEY, "database_busy"),)
    if failure is DatabaseFailure.CONFLICT:
        return grpc.StatusCode.ABORTED, CONFLICTED, ((ERROR_CODE_KEY, "conflict"),)
    error_id = uuid.uuid4().hex[:12]
    log.error("%s failed unexpectedly (error id %s)", method, error_id, exc_info=error)
    return (
        grpc.StatusCode.INTERNAL,
        INTERNAL.format(error_id=error_id),
        ((ERROR_CODE_KEY, "internal"), (ERROR_ID_KEY, error_id)),
    )


def _short(error: BaseException) -> str:
    cause = error.__cause__ or error
    return one_line(f"{type(cause).__name__}: {cause}")[:200]


async def abort_with(
    error: BaseException, context: Ctx, method: str = "", watcher: DatabaseWatcher | None = None
) -> NoReturn:
    code, message, metadata = mapped(error, method or "a call", watcher)
    context.set_trailing_metadata(metadata)
    await context.abort(code, message)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


def handles_errors(fn: F) -> F:
    """Maps any failure of a unary servicer method (see the module docstring)."""

    @functools.wraps(fn)
    async def wrapper(self: object, request: object, context: Ctx) -> Any:
        try:
            return await fn(self, request, context)
        except BaseException as e:
            if _passes_through(e):
                raise
            await abort_with(e, context, fn.__qualname__)

    return cast(F, wrapper)


# ---------------------------------------------------------------- interceptor


class _Undecodable:
    """What a request deserializer yields for bytes that are not a valid message."""


_UNDECODABLE = _Undecodable()


def _safe_deserializer(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def safe(data: bytes) -> Any:
        try:
            return deserialize(data)
        except (DecodeError, ValueError, TypeError, RuntimeError):
            return _UNDECODABLE

    return safe


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if request is _UNDECODABLE:
            raise UndecodableRequestError(UNDECODABLE)
        yield request


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Applies the mapping to every method of every service; while the watcher says
    the database is down, calls fail fast with UNAVAILABLE (except ``exempt``
    services such as health checks, which must answer regardless)."""

    def __init__(
        self, watcher: DatabaseWatcher | None = None, *, exempt: tuple[str, ...] = ()
    ) -> None:
        self._watcher = watcher
        self._exempt = exempt

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        service = method.lstrip("/").split("/", 1)[0]
        guard = None if service in self._exempt else self._watcher
        return _wrap(handler, method, self._watcher, guard)


def _wrap(
    handler: Handler,
    method: str,
    watcher: DatabaseWatcher | None,
    guard: DatabaseWatcher | None,
) -> Handler:
    deserializer = _safe_deserializer(handler.request_deserializer)
    serializer = handler.response_serializer

    async def precheck(request: Any, context: Ctx) -> None:
        if request is _UNDECODABLE:
            await abort_with(UndecodableRequestError(UNDECODABLE), context, method)
        if guard is not None and not guard.database_up:
            await abort_with(errors.DatabaseUnavailableError("down"), context, method)

    async def fail(error: BaseException, context: Ctx) -> NoReturn:
        if _passes_through(error):
            raise error
        await abort_with(error, context, method, watcher)

    if handler.unary_unary is not None:
        unary_unary: Any = handler.unary_unary

        async def uu(request: Any, context: Ctx) -> Any:
            await precheck(request, context)
            try:
                return await unary_unary(request, context)
            except BaseException as e:
                await fail(e, context)

        return grpc.unary_unary_rpc_method_handler(
            uu, request_deserializer=deserializer, response_serializer=serializer
        )
    if handler.stream_unary is not None:
        stream_unary: Any = handler.stream_unary

        async def su(requests: AsyncIterator[Any], context: Ctx) -> Any:
            await precheck(None, context)
            try:
                return await stream_unary(_checked(requests), context)
            except BaseException as e:
                await fail(e, context)

        return grpc.stream_unary_rpc_method_handler(
            su, request_deserializer=deserializer, response_serializer=serializer
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _streaming(handler.unary_stream, precheck, fail, checked_input=False),
            request_deserializer=deserializer,
            response_serializer=serializer,
        )
    assert handler.stream_stream is not None
    return grpc.stream_stream_rpc_method_handler(
        _streaming(handler.stream_stream, precheck, fail, checked_input=True),
        request_deserializer=deserializer,
        response_serializer=serializer,
    )


def _streaming(
    behaviour: Callable[..., Any],
    precheck: Callable[[Any, Ctx], Awaitable[None]],
    fail: Callable[[BaseException, Ctx], Awaitable[NoReturn]],
    *,
    checked_input: bool,
) -> Callable[..., Any]:
    """Wraps a response-streaming behaviour, whether it is an async generator or a
    coroutine that writes with ``context.write``."""

    def request_of(request: Any) -> Any:
        return _checked(request) if checked_input else request

    if inspect.isasyncgenfunction(behaviour):

        async def generate(request: Any, context: Ctx) -> AsyncIterator[Any]:
            await precheck(None if checked_input else request, context)
            try:
                async for response in behaviour(request_of(request), context):
                    yield response
            except BaseException as e:
                await fail(e, context)

        return generate

    async def write(request: Any, context: Ctx) -> None:
        await precheck(None if checked_input else request, context)
        try:
            await behaviour(request_of(request), context)
        except BaseException as e:
            await fail(e, context)

    return write
