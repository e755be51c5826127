"""Reads the caller's credential from gRPC metadata, resolves it to a Principal and
checks it against the permission table (``comet.server.authorization``) before any
servicer code runs.

``guard`` wraps every method of a servicer at registration: a method with no row in
the table makes registration fail, so no RPC can be served unchecked. Servicers then
read the already-checked principal with the ``Authenticator`` methods."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from comet.server import authorization
from comet.server.authorization import Action, Caller
from comet.server.errors import (
    AuthenticationError,
    PermissionDeniedError,
    ServerError,
    UnknownCredentialError,
)
from comet.server.rpc.errors import ERROR_CODE_KEY, status_for
from comet.server.store.accounts import AccountStore, Principal

Ctx = grpc.aio.ServicerContext[Any, Any]

# Metadata naming a "Comet Server" vault bucket (its key is checked by StorageService).
BUCKET_HEADER = "x-comet-bucket"

DENIED_AUDIT_ACTION = "authorization.denied"

# The principal the guard resolved for the running call (None: anonymous/bucket).
_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "comet_principal", default=None
)


def _metadata(context: Ctx) -> dict[str, str]:
    return {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}


def bearer_token(context: Ctx) -> str:
    value = _metadata(context).get("authorization", "")
    if value.startswith("Bearer ") and len(value) > len("Bearer "):
        return value[len("Bearer ") :]
    raise AuthenticationError("not logged in: this call needs a credential")


def peer_address(context: Ctx) -> str:
    peer = context.peer() or ""
    # "ipv4:127.0.0.1:5555" / "ipv6:[::1]:5555" -> the address without the port.
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer


class Authenticator:
    def __init__(self, accounts: AccountStore) -> None:
        self._accounts = accounts

    # ------------------------------------------------------------------ the guard's side

    async def authorize(self, context: Ctx, action: Action, *, rpc: str = "") -> Principal | None:
        """Resolves the caller and checks ``action`` against the table. Returns the
        principal (None for an anonymous or bucket-key call). A known caller refused
        for its role is written to the audit log."""
        allowed = authorization.PERMISSIONS[action]
        if Caller.ANONYMOUS in allowed:
            return None
        headers = _metadata(context)
        if Caller.BUCKET in allowed and headers.get(BUCKET_HEADER):
            return None  # the bucket key itself is checked by StorageService
        if "authorization" not in headers:
            authorization.require(Caller.ANONYMOUS, action)
        principal = await self._identify(
            bearer_token(context), prefer_device=Caller.DEVICE in allowed
        )
        try:
            authorization.require(
                authorization.caller_of(principal), action, who=principal.username
            )
        except PermissionDeniedError as e:
            await self._accounts.audit(
                principal.username,
                DENIED_AUDIT_ACTION,
                rpc or action.value,
                source=peer_address(context),
                success=False,
                details=e.message,
            )
            raise
        return principal

    async def _identify(self, token: str, *, prefer_device: bool) -> Principal:
        """A device token or a session, whichever ``token`` is. A revoked device or
        an expired session is refused, never tried as the other kind."""
        first, second = (
            (self._device, self._session) if prefer_device else (self._session, self._device)
        )
        try:
            return await first(token)
        except UnknownCredentialError as first_error:
            try:
                return await second(token)
            except UnknownCredentialError:
                raise first_error from None

    async def _device(self, token: str) -> Principal:
        return await self._accounts.authenticate_device(token)

    async def _session(self, token: str) -> Principal:
        return await self._accounts.authenticate_session(token, admin=False)

    # ------------------------------------------------------------------ the servicers' side

    async def device(self, context: Ctx) -> Principal:
        principal = _current.get()
        if principal is not None and principal.device_id is not None:
            return principal
        return await self._accounts.authenticate_device(bearer_token(context))

    async def account(self, context: Ctx) -> Principal:
        """A device credential or a (user or admin) session: whoever owns the account."""
        principal = _current.get()
        if principal is not None:
            return principal
        return await self._identify(bearer_token(context), prefer_device=True)

    async def admin(self, context: Ctx) -> Principal:
        """The admin session the guard let through."""
        principal = _current.get()
        if principal is None:
            principal = await self._accounts.authenticate_session(bearer_token(context), admin=True)
        if authorization.caller_of(principal) not in (
            Caller.SUPER,
            Caller.OPERATOR,
            Caller.AUDITOR,
        ):
            raise AuthenticationError("this call needs an administrator session")
        return principal


# ---------------------------------------------------------------------- guarding servicers


async def _refuse(context: Ctx, error: ServerError) -> None:
    context.set_trailing_metadata(((ERROR_CODE_KEY, error.code),))
    await context.abort(status_for(error), error.message)


def _guarded(
    method: Callable[..., Any], rpc: str, auth: Authenticator, *, streams: bool
) -> Callable[..., Any]:
    action = authorization.action_of_rpc(rpc)
    if streams:

        @functools.wraps(method)
        async def stream_wrapper(request: Any, context: Ctx) -> AsyncIterator[Any]:
            try:
                principal = await auth.authorize(context, action, rpc=rpc)
            except ServerError as e:
                await _refuse(context, e)
                return
            _current.set(principal)
            async for item in method(request, context):
                yield item

        return stream_wrapper

    @functools.wraps(method)
    async def wrapper(request: Any, context: Ctx) -> Any:
        try:
            principal = await auth.authorize(context, action, rpc=rpc)
        except ServerError as e:
            await _refuse(context, e)
            return None
        _current.set(principal)
        return await method(request, context)

    return wrapper


def guard(servicer: Any, service: ServiceDescriptor, auth: Authenticator) -> Any:
    """Wraps each method of ``servicer`` so the permission table is checked before it
    runs. Raises PermissionDeniedError if a method of ``service`` has no row."""
    for method in service.methods:
        rpc = f"{service.name}/{method.name}"
        original = getattr(servicer, method.name)
        guarded = _guarded(original, rpc, auth, streams=method.server_streaming)
        setattr(servicer, method.name, guarded)
    return servicer
