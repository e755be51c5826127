"""The console's session cookie and CSRF tokens.

The cookie carries the session token (the same kind of session as gRPC logins, kept
in the database) and the time of the last request, sealed with an HMAC so the idle
time cannot be forged. The CSRF token of a session is an HMAC of its token: any
server instance sharing the database can check it, and it never leaves the page."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

SESSION_COOKIE = "comet_session"
# Before sign-in: a random value echoed by the sign-in form (double submit).
SIGNIN_COOKIE = "comet_signin"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class CookieSession:
    token: str
    last_active: datetime


class CookieCodec:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def seal(self, token: str, last_active: datetime) -> str:
        body = f"{token}.{int(last_active.timestamp())}"
        return f"{body}.{self._mac('session', body)}"

    def open(self, value: str) -> CookieSession | None:
        """The session in a cookie, or None for a malformed or forged one."""
        body, _, mac = value.rpartition(".")
        token, _, stamp = body.rpartition(".")
        if not (token and stamp.isdigit() and hmac.compare_digest(mac, self._mac("session", body))):
            return None
        return CookieSession(token, datetime.fromtimestamp(int(stamp)).astimezone())

    def csrf_token(self, session_token: str) -> str:
        return self._mac("csrf", session_token)

    def csrf_ok(self, session_token: str, offered: str) -> bool:
        return bool(offered) and hmac.compare_digest(self.csrf_token(session_token), offered)


def new_signin_nonce() -> str:
    return secrets.token_urlsafe(24)


def idle_expired(session: CookieSession, now: datetime, idle: timedelta) -> bool:
    return now - session.last_active > idle
