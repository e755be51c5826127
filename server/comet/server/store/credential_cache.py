"""A short-lived memory of device credentials that checked out.

Every call an agent makes carries its device token; looking it up in PostgreSQL on
each call made authentication a large share of report ingestion. A successful
lookup is remembered for ``ttl`` seconds. Revocation does not wait for that: a
device revoked (or its credential rotated, or its user deleted) is forgotten here
at once by the instance that did it, and every other instance hears of it through
``NOTIFY comet_revocations`` (payload ``device:<id>`` or ``user:<username>``, sent in
the revoking transaction) and forgets it as soon as the notification arrives. Only
a change made straight in the database, bypassing the server, waits for ``ttl``.
Failed lookups are never remembered, so a new credential works at once and guessing
gains nothing.

No database and no asyncio: the ``AccountStore`` consults and evicts it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # accounts.py imports this module
    from comet.server.store.accounts import Principal

DEFAULT_TTL = timedelta(seconds=5)
REVOCATIONS_CHANNEL = "comet_revocations"
_DEVICE = "device:"
_USER = "user:"
# Not sent by anyone: what an instance applies to itself when its listener
# (re)connects, since it may have missed notifications meanwhile.
ALL_REVOKED = "all"


def device_revoked(device_id: str) -> str:
    """The ``comet_revocations`` payload for a revoked (or rotated) device."""
    return _DEVICE + device_id


def user_revoked(username: str) -> str:
    """The ``comet_revocations`` payload for a deleted user (all their devices)."""
    return _USER + username


DEFAULT_CAPACITY = 100_000


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    expires_at: datetime


class CredentialCache:
    """Token hash -> the device Principal it resolved to, until it expires."""

    def __init__(self, *, ttl: timedelta = DEFAULT_TTL, capacity: int = DEFAULT_CAPACITY) -> None:
        self.ttl = ttl
        self._capacity = capacity
        self._entries: dict[str, _Entry] = {}

    def get(self, token_hash: str, now: datetime) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry.expires_at <= now:
            del self._entries[token_hash]
            return None
        return entry.principal

    def put(self, token_hash: str, principal: Principal, now: datetime) -> None:
        if len(self._entries) >= self._capacity:
            self._drop_expired(now)
        while len(self._entries) >= self._capacity:
            del self._entries[next(iter(self._entries))]  # the oldest
        self._entries[token_hash] = _Entry(principal, now + self.ttl)

    def forget_device(self, device_id: str) -> None:
        """Revoked or rotated: the device's cached credentials stop working now."""
        self._forget(lambda p: p.device_id == device_id)

    def forget_user(self, username: str) -> None:
        """The user was deleted: all of their devices' credentials stop working now."""
        self._forget(lambda p: p.username == username)

    def apply(self, payload: str) -> None:
        """Act on a ``comet_revocations`` notification from any instance."""
        if payload.startswith(_DEVICE):
            self.forget_device(payload.removeprefix(_DEVICE))
        elif payload.startswith(_USER):
            self.forget_user(payload.removeprefix(_USER))
        elif payload == ALL_REVOKED:
            self._entries.clear()

    def _forget(self, matches: Callable[[Principal], bool]) -> None:
        for key in [k for k, e in self._entries.items() if matches(e.principal)]:
            del self._entries[key]

    def _drop_expired(self, now: datetime) -> None:
        for key in [k for k, e in self._entries.items() if e.expires_at <= now]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
