"""Reads the caller's credential from gRPC metadata and resolves it to a Principal."""

from __future__ import annotations

from typing import Any

import grpc

from comet.server.errors import AuthenticationError, PermissionDeniedError
from comet.server.store.accounts import AccountStore, Principal, Role


def bearer_token(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :]
    raise AuthenticationError("not logged in: this call needs a credential")


def peer_address(context: grpc.aio.ServicerContext[Any, Any]) -> str:
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

    async def device(self, context: grpc.aio.ServicerContext[Any, Any]) -> Principal:
        return await self._accounts.authenticate_device(bearer_token(context))

    async def account(self, context: grpc.aio.ServicerContext[Any, Any]) -> Principal:
        """A device credential or a (user or admin) session: whoever owns the account."""
        token = bearer_token(context)
        try:
            return await self._accounts.authenticate_device(token)
        except AuthenticationError as device_error:
            if "revoked" in device_error.message:
                raise
        return await self._accounts.authenticate_session(token, admin=False)

    async def admin(
        self, context: grpc.aio.ServicerContext[Any, Any], *, allowed: frozenset[Role]
    ) -> Principal:
        principal = await self._accounts.authenticate_session(bearer_token(context), admin=True)
        if principal.role not in allowed:
            raise PermissionDeniedError(
                f"the role of {principal.username!r} does not allow this action"
            )
        return principal


ANY_ADMIN = frozenset({Role.SUPER_ADMIN, Role.OPERATOR, Role.AUDITOR})
OPERATORS = frozenset({Role.SUPER_ADMIN, Role.OPERATOR})
SUPER = frozenset({Role.SUPER_ADMIN})
