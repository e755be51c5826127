"""How well an immutable vault's snapshots are protected, and keeping them so.

``report`` asks the backend (S3 Object Lock retain-until dates, or the Comet
Server's protected-until for its buckets) about every object the vault's snapshots
need: config, keys, indexes, snapshots and the packs the index names. ``extend``
moves the protection of those still in use later before it runs out (the S3 lock, as
Kopia does, or the server bucket's protected-until), so a long-lived snapshot stays
protected however old its packs are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from comet.agent.repository.pack import pack_key
from comet.agent.repository.repository import Repository
from comet.agent.storage.base import Storage


@runtime_checkable
class ProtectedStorage(Protocol):
    def protected_until(self, key: str) -> datetime | None: ...


@runtime_checkable
class ExtendableStorage(ProtectedStorage, Protocol):
    def extend_protection(self, key: str, until: datetime) -> None: ...


@dataclass(frozen=True)
class ProtectionReport:
    checked: int
    earliest: datetime | None  # when the first needed object loses its protection
    unprotected: list[str] = field(default_factory=list)  # needed, no longer protected

    @property
    def ok(self) -> bool:
        return not self.unprotected


def _backend(storage: Storage) -> object:
    """The backend under the retrying/rate-limiting wrappers."""
    inner: object = storage
    while hasattr(inner, "inner"):
        inner = inner.inner
    return inner


def needed_keys(repo: Repository) -> list[str]:
    keys = ["config"]
    for prefix in ("keys/", "index/", "snapshots/"):
        keys.extend(sorted(o.key for o in repo.storage.list(prefix)))
    keys.extend(sorted(pack_key(p) for p in repo.index.packs()))
    return keys


def report(repo: Repository, now: datetime) -> ProtectionReport | None:
    """None when the vault's backend keeps no protection (not immutable)."""
    backend = _backend(repo.storage)
    if not isinstance(backend, ProtectedStorage):
        return None
    earliest: datetime | None = None
    unprotected: list[str] = []
    keys = needed_keys(repo)
    for key in keys:
        until = backend.protected_until(key)
        if until is None or until <= now:
            unprotected.append(key)
            continue
        earliest = until if earliest is None or until < earliest else earliest
    return ProtectionReport(len(keys), earliest, unprotected)


def extend(
    repo: Repository, seconds: int, now: datetime, *, forgotten: Iterable[bytes] = ()
) -> int:
    """Give every needed object whose lock ends within half the protection period a
    full period again; returns how many were extended (0 for backends without locks
    a client may extend). The snapshots retention just ``forgotten`` (still there
    when their protection kept them) are not needed: they must be left to expire."""
    backend = _backend(repo.storage)
    if not seconds or not isinstance(backend, ExtendableStorage):
        return 0
    soon = now + timedelta(seconds=seconds / 2)
    gone = {f"snapshots/{snapshot_id.hex()}" for snapshot_id in forgotten}
    extended = 0
    for key in needed_keys(repo):
        if key in gone:
            continue
        until = backend.protected_until(key)
        if until is None or until < soon:
            backend.extend_protection(key, now + timedelta(seconds=seconds))
            extended += 1
    return extended
