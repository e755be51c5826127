"""A short-lived memory of device credentials that checked out.

Every call an agent makes carries its device token; looking it up in PostgreSQL on
each call made authentication a large share of report ingestion. A successful
lookup is remembered for ``ttl`` seconds. The bound this puts on revocation: a
device revoked (or its credential rotated, or its user deleted) through this
instance is forgotten here at once; through another instance, or straight in the
database, it is refused here at the latest ``ttl`` after the change. Failed lookups
are never remembered, so a new credential works at once and guessing gains nothing.

No database and no asyncio: the ``AccountStore`` consults and evicts it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # accounts.py imports this module
    from comet.server.store.accounts import Principal

DEFAULT_TTL = timedelta(seconds=5)
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

    def _forget(self, matches: Callable[[Principal], bool]) -> None:
        for key in [k for k, e in self._entries.items() if matches(e.principal)]:
            del self._entries[key]

    def _drop_expired(self, now: datetime) -> None:
        for key in [k for k, e in self._entries.items() if e.expires_at <= now]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
