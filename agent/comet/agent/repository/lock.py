"""Repository locks (docs/format.md, "Locks"): shared for backup and restore, exclusive
for maintenance that deletes. Locks are advisory objects under ``locks/``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from comet.agent.errors import LockedError, RepositoryError
from comet.agent.repository.crypto import Sealer
from comet.agent.repository.format import MAGIC_LOCK, check_header, header
from comet.agent.storage.base import ObjectNotFoundError, Storage

STALE_AFTER_NS = 30 * 60 * 10**9
REFRESH_EVERY_NS = 5 * 60 * 10**9


@dataclass(frozen=True)
class LockInfo:
    key: str
    exclusive: bool
    hostname: str
    pid: int
    time_ns: int

    def is_stale(self, now_ns: int, *, hostname: str = "") -> bool:
        """Not refreshed for STALE_AFTER_NS by the reader's clock, or (given the
        reader's ``hostname``) held by a process of this host that no longer exists,
        e.g. an agent killed in the middle of a job."""
        if now_ns - self.time_ns > STALE_AFTER_NS:
            return True
        return bool(hostname) and self.hostname == hostname and not _process_alive(self.pid)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # someone else's live process (or a pid this host cannot have)
    return True


def _encode(sealer: Sealer, info: LockInfo) -> bytes:
    body = {
        "v": 1,
        "exclusive": info.exclusive,
        "hostname": info.hostname,
        "pid": info.pid,
        "time_ns": info.time_ns,
    }
    return sealer.seal(header(MAGIC_LOCK), json.dumps(body).encode())


def list_locks(storage: Storage, sealer: Sealer) -> list[LockInfo]:
    """Every lock in the repository. A damaged lock reads as a live shared lock with
    time 0 only if it cannot be decoded, so it never blocks backups."""
    out = []
    for obj in storage.list("locks/"):
        try:
            data = storage.get(obj.key)
        except ObjectNotFoundError:
            continue  # released while listing
        try:
            check_header(data, MAGIC_LOCK, obj.key)
            doc = json.loads(sealer.open(5, data, obj.key))
            out.append(
                LockInfo(
                    obj.key,
                    bool(doc["exclusive"]),
                    str(doc["hostname"]),
                    int(doc["pid"]),
                    int(doc["time_ns"]),
                )
            )
        except (RepositoryError, ValueError, KeyError, TypeError):
            out.append(LockInfo(obj.key, False, "?", 0, 0))
    return out


class RepositoryLock:
    """A held lock. Use as a context manager, or call ``release``."""

    def __init__(
        self, storage: Storage, sealer: Sealer, info: LockInfo, now_ns: Callable[[], int]
    ) -> None:
        self._storage = storage
        self._sealer = sealer
        self.info = info
        self._now_ns = now_ns
        self._released = False

    @classmethod
    def acquire(
        cls,
        storage: Storage,
        sealer: Sealer,
        *,
        exclusive: bool,
        hostname: str,
        now_ns: Callable[[], int],
    ) -> RepositoryLock:
        """Take a lock. Raises LockedError naming the conflicting holder."""
        now = now_ns()
        mine = LockInfo(f"locks/{secrets.token_hex(32)}", exclusive, hostname, os.getpid(), now)

        def conflicts() -> list[LockInfo]:
            return [
                other
                for other in list_locks(storage, sealer)
                if other.key != mine.key
                and not other.is_stale(now, hostname=hostname)
                and (exclusive or other.exclusive)
            ]

        if found := conflicts():
            raise LockedError(_describe(found[0]))
        storage.put(mine.key, _encode(sealer, mine))
        if exclusive and (found := conflicts()):
            storage.delete(mine.key)
            raise LockedError(_describe(found[0]))
        return cls(storage, sealer, mine, now_ns)

    def refresh(self) -> None:
        """Rewrite the lock with the current time if the refresh interval passed."""
        now = self._now_ns()
        if self._released or now - self.info.time_ns < REFRESH_EVERY_NS:
            return
        self.info = LockInfo(
            self.info.key, self.info.exclusive, self.info.hostname, self.info.pid, now
        )
        self._storage.put(self.info.key, _encode(self._sealer, self.info))

    def release(self) -> None:
        """Remove the lock. Idempotent."""
        if not self._released:
            self._released = True
            self._storage.delete(self.info.key)

    def __enter__(self) -> RepositoryLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _describe(info: LockInfo) -> str:
    kind = "an exclusive" if info.exclusive else "a"
    return (
        f"the repository is locked: {kind} lock is held by {info.hostname} (pid {info.pid}); "
        "wait for that job to finish, or unlock the vault if it is stale"
    )


__all__ = ["LockInfo", "RepositoryLock", "list_locks"]
