"""Who is making a request, and whether the permission table lets them: the web
side of ``comet.server.rpc.auth_context``, over the same ``authorization.require``.

A request carries an API key (``Authorization: Bearer cmk_...``), a session cookie,
or nothing. A cookie session idle for longer than the idle timeout is ended. A
state-changing request made with a cookie must carry the session's CSRF token (a
form field or the ``X-CSRF-Token`` header); API keys are not sent by browsers, so
requests made with one need none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.requests import Request

from comet.server import authorization
from comet.server.authorization import Action, Caller
from comet.server.clock import Clock
from comet.server.errors import AuthenticationError, PermissionDeniedError, ServerError
from comet.server.rpc.client_address import ClientAddresses
from comet.server.store.accounts import AccountStore, Principal
from comet.server.store.api_keys import ApiKeyStore, is_api_key
from comet.server.web.session_cookie import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    CookieCodec,
    idle_expired,
)

DENIED_AUDIT_ACTION = "authorization.denied"
# A cookie's idle time is renewed at most this often (each renewal is a Set-Cookie).
RENEW_EVERY = timedelta(seconds=30)
# Sent by a page's own periodic re-read (the devices list): not the admin's activity,
# so it does not renew the idle time, or a page left open would never sign out.
REFRESH_HEADER = "x-comet-refresh"


@dataclass(frozen=True)
class Visitor:
    """The resolved caller of one request."""

    principal: Principal | None
    caller: Caller
    source: str
    session_token: str = ""  # a cookie session's token ("" for an API key)
    renew_cookie: str = ""  # a fresh cookie value to send back, if due

    @property
    def csrf_bound(self) -> bool:
        return bool(self.session_token)


class Access:
    def __init__(
        self,
        accounts: AccountStore,
        api_keys: ApiKeyStore,
        codec: CookieCodec,
        clock: Clock,
        *,
        idle: timedelta,
        addresses: ClientAddresses,
    ) -> None:
        self._accounts = accounts
        self._api_keys = api_keys
        self.codec = codec
        self._clock = clock
        self.idle = idle
        self._addresses = addresses

    def now(self) -> datetime:
        return self._clock.now()

    def source(self, request: Request) -> str:
        peer = request.client.host if request.client else ""
        return self._addresses.of_peer(peer, {k.lower(): v for k, v in request.headers.items()})

    async def visitor(self, request: Request) -> Visitor:
        source = self.source(request)
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer "):
            key = header.removeprefix("Bearer ").strip()
            if not is_api_key(key):
                raise AuthenticationError("the HTTP API takes an API key (cmk_...)")
            principal = await self._api_keys.authenticate(key)
            return Visitor(principal, authorization.caller_of(principal), source)
        cookie = self.codec.open(request.cookies.get(SESSION_COOKIE, ""))
        if cookie is None:
            return Visitor(None, Caller.ANONYMOUS, source)
        now = self._clock.now()
        if idle_expired(cookie, now, self.idle):
            await self._accounts.revoke_session(cookie.token)
            raise AuthenticationError("the session was idle too long: sign in again")
        principal = await self._accounts.authenticate_session(cookie.token, admin=False)
        due = now - cookie.last_active > RENEW_EVERY and not request.headers.get(REFRESH_HEADER)
        renew = self.codec.seal(cookie.token, now) if due else ""
        return Visitor(
            principal,
            authorization.caller_of(principal),
            source,
            session_token=cookie.token,
            renew_cookie=renew,
        )

    async def authorize(self, request: Request, action: Action, *, route: str) -> Visitor:
        """The visitor, once the table allows ``action`` (and, for a state-changing
        request with a cookie, its CSRF token checks out). A known caller refused
        for its role is audited, as on gRPC."""
        if Caller.ANONYMOUS in authorization.PERMISSIONS[action]:
            # Open to anyone (sign-in, the OpenAPI document): a bad credential is
            # ignored, as the gRPC guard ignores it for PreLogin/Login.
            try:
                return await self.visitor(request)
            except ServerError:
                return Visitor(None, Caller.ANONYMOUS, self.source(request))
        visitor = await self.visitor(request)
        if visitor.principal is None:
            authorization.require(Caller.ANONYMOUS, action)
            return visitor
        try:
            authorization.require(visitor.caller, action, who=visitor.principal.username)
        except PermissionDeniedError as e:
            await self._accounts.audit(
                visitor.principal.username, DENIED_AUDIT_ACTION, route,
                source=visitor.source, success=False, details=e.message,
            )  # fmt: skip
            raise
        if request.method not in ("GET", "HEAD") and visitor.csrf_bound:
            await self.check_csrf(request, visitor.session_token)
        return visitor

    async def check_csrf(self, request: Request, session_token: str) -> None:
        offered = request.headers.get(CSRF_HEADER, "")
        if not offered and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            offered = value if isinstance(value, str) else ""
        if not self.codec.csrf_ok(session_token, offered):
            raise PermissionDeniedError(
                "the form's CSRF token is missing or wrong: reload the page"
            )
