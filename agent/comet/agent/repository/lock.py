"""Repository locks (docs/format.md, "Locks"): shared for backup, restore and verify,
exclusive for maintenance that deletes. Locks are advisory objects under ``locks/``.

A holder rewrites its lock on a timer (a thread, independent of the job's progress) and
checks on each refresh that the lock is still there; a removed lock makes ``check``
raise LockLostError, so the job stops before it commits anything.

Whether another holder's lock is stale is never decided by comparing two devices'
clocks. A lock is stale when

- its holder runs on this host (same host name and boot) and that process is gone;
- the storage's own timestamps say it was not rewritten for the stale period (the age
  is the storage time of a lock this device just wrote minus the storage time of the
  other lock: one clock, the storage's); or
- this process watched it stay byte-for-byte unchanged for the stale period, measured
  on its own monotonic clock, which counts sleep too (``LockWatch``).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType

from comet.agent.errors import LockedError, LockLostError, RepositoryError
from comet.agent.repository.crypto import Sealer
from comet.agent.repository.format import MAGIC_LOCK, check_header, header
from comet.agent.storage.base import ObjectNotFoundError, Storage, StorageError

STALE_AFTER_NS = 30 * 60 * 10**9
REFRESH_EVERY_NS = 5 * 60 * 10**9
# Prune spares unindexed packs and temp files younger than this (by storage time): a
# writer that lost its lock still has the stale period to notice, plus a margin.
PRUNE_GRACE_NS = (24 * 60 + 5) * 60 * 10**9


def elapsed_ns() -> int:
    """A clock that only moves forward and keeps counting while the machine sleeps
    (CLOCK_BOOTTIME): a holder suspended for an hour must see that an hour passed."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime_ns(clock) if clock is not None else time.monotonic_ns()


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> int:
    """The start time of a process in clock ticks since boot (0 if unknown), which
    tells a live holder from a new process that reuses its pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def process_alive(pid: int, start: int) -> bool:
    """Whether process ``pid`` (started at ``start`` ticks, 0 = unknown) still runs here."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not (start and _process_start(pid) not in (0, start))


@dataclass(frozen=True)
class LockPolicy:
    """Lock and grace periods and the clocks they are measured with (injectable so
    tests run in seconds)."""

    stale_after_ns: int = STALE_AFTER_NS
    refresh_every_ns: int = REFRESH_EVERY_NS
    prune_grace_ns: int = PRUNE_GRACE_NS
    monotonic_ns: Callable[[], int] = elapsed_ns
    hostname: str = field(default_factory=socket.gethostname)
    boot_id: str = field(default_factory=_boot_id)

    def __post_init__(self) -> None:
        if self.refresh_every_ns * 2 > self.stale_after_ns:
            raise ValueError("locks must be refreshed at least twice per stale period")
        if self.prune_grace_ns < self.stale_after_ns:
            raise ValueError("the prune grace period must exceed the lock stale period")


@dataclass(frozen=True)
class LockInfo:
    """A lock as read from storage. ``time_ns`` is the holder's wall clock (shown to
    people, never compared); ``mtime_ns`` the storage's time of its last rewrite."""

    key: str
    exclusive: bool
    hostname: str
    pid: int
    time_ns: int
    purpose: str = ""
    boot_id: str = ""
    pid_start: int = 0
    mtime_ns: int | None = None
    fingerprint: bytes = b""

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        what = f" ({self.purpose})" if self.purpose else ""
        return f"{kind} lock{what} of {self.hostname} pid {self.pid}"


class LockWatch:
    """What this process has seen of other holders' locks: each lock's fingerprint and
    the monotonic time it was first seen with it. Process-wide, so observations made
    by one job serve the next."""

    _LIMIT = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, tuple[bytes, int]] = OrderedDict()

    def unchanged_for(self, info: LockInfo, now_mono: int) -> int:
        """Record ``info`` and return for how long (ns) it has been seen unchanged."""
        with self._lock:
            seen = self._seen.get(info.key)
            if seen is None or seen[0] != info.fingerprint:
                self._seen[info.key] = (info.fingerprint, now_mono)
                self._seen.move_to_end(info.key)
                while len(self._seen) > self._LIMIT:
                    self._seen.popitem(last=False)
                return 0
            return now_mono - seen[1]


WATCH = LockWatch()


def staleness(
    info: LockInfo,
    *,
    policy: LockPolicy,
    storage_now: int | None,
    watch: LockWatch,
) -> str | None:
    """Why ``info`` is stale (a sentence), or None while it may belong to a live job.
    ``storage_now`` is the storage time of an object this device just wrote."""
    if info.hostname == policy.hostname and (not info.boot_id or info.boot_id == policy.boot_id):
        if not process_alive(info.pid, info.pid_start):
            return f"its process {info.pid} on this host is gone"
    elif info.hostname == policy.hostname and info.boot_id != policy.boot_id:
        return "this host restarted since it was taken"
    seen = watch.unchanged_for(info, policy.monotonic_ns())
    if storage_now is not None and info.mtime_ns is not None:
        age = storage_now - info.mtime_ns
        if age > policy.stale_after_ns:
            return f"it was not refreshed for {_minutes(age)} (by the storage's clock)"
    if seen > policy.stale_after_ns:
        return f"it stayed unchanged for {_minutes(seen)} as watched from this device"
    return None


def _minutes(ns: int) -> str:
    return f"{ns / 60e9:.0f} min" if ns >= 60 * 10**9 else f"{ns / 1e9:.0f} s"


def _encode(sealer: Sealer, info: LockInfo, seq: int) -> bytes:
    body = {
        "v": 2,
        "exclusive": info.exclusive,
        "hostname": info.hostname,
        "pid": info.pid,
        "time_ns": info.time_ns,
        "purpose": info.purpose,
        "boot_id": info.boot_id,
        "pid_start": info.pid_start,
        "seq": seq,  # changes on every refresh, whatever the clocks say
    }
    return sealer.seal(header(MAGIC_LOCK), json.dumps(body).encode())


def list_locks(storage: Storage, sealer: Sealer) -> list[LockInfo]:
    """Every lock in the repository, with its storage time and a fingerprint of its
    bytes. An undecodable lock reads as a shared lock of host "?" (it never blocks a
    backup; staleness applies to it like to any other)."""
    out = []
    for obj in storage.list("locks/"):
        try:
            data = storage.get(obj.key)
        except ObjectNotFoundError:
            continue  # released while listing
        fingerprint = hashlib.blake2b(data, digest_size=16).digest()
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
                    str(doc.get("purpose", "")),
                    str(doc.get("boot_id", "")),
                    int(doc.get("pid_start", 0)),
                    obj.mtime_ns,
                    fingerprint,
                )
            )
        except (RepositoryError, ValueError, KeyError, TypeError):
            out.append(LockInfo(obj.key, False, "?", 0, 0, "", "", 0, obj.mtime_ns, fingerprint))
    return out


class RepositoryLock:
    """A held lock, refreshed by a timer thread until released. Use as a context
    manager, or call ``release``. ``held`` is False for a reader that could not write
    its lock (a read-only or full vault): ``warning`` then says so."""

    def __init__(
        self,
        storage: Storage,
        sealer: Sealer,
        info: LockInfo,
        policy: LockPolicy,
        *,
        now_ns: Callable[[], int] = time.time_ns,
        held: bool = True,
        warning: str = "",
    ) -> None:
        self._storage = storage
        self._now_ns = now_ns
        self._sealer = sealer
        self.info = info
        self._policy = policy
        self.held = held
        self.warning = warning
        self.lost: str = ""
        self.refresh_errors = 0
        self._refreshed_mono = policy.monotonic_ns()
        self._seq = 0
        self._released = False
        self._stop = threading.Event()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        if held:
            self._thread = threading.Thread(
                target=self._refresh_loop, name="comet-lock-refresh", daemon=True
            )
            self._thread.start()

    @classmethod
    def acquire(
        cls,
        storage: Storage,
        sealer: Sealer,
        *,
        exclusive: bool,
        hostname: str,
        now_ns: Callable[[], int],
        policy: LockPolicy | None = None,
        purpose: str = "",
        watch: LockWatch = WATCH,
        may_read_without: bool = False,
        vault: str = "VAULT",
    ) -> RepositoryLock:
        """Take a lock. Raises LockedError naming the conflicting holder and how to
        unlock. With ``may_read_without`` (shared locks for reading only), a lock that
        cannot be written gives an unheld lock with a warning instead of an error."""
        policy = policy or LockPolicy()
        pid = os.getpid()
        mine = LockInfo(
            f"locks/{secrets.token_hex(32)}",
            exclusive,
            hostname or policy.hostname,
            pid,
            now_ns(),
            purpose,
            policy.boot_id if (hostname or policy.hostname) == policy.hostname else "",
            _process_start(pid),
        )
        try:
            storage.put(mine.key, _encode(sealer, mine, 0))
        except StorageError as e:
            if exclusive or not may_read_without:
                raise
            # Reading needs no write access: go on unlocked, unless a live exclusive
            # lock says a prune is deleting data right now.
            found = _conflicts(storage, sealer, mine, policy, watch)
            if found:
                raise LockedError(_describe(found[0][0], found[0][1], vault)) from e
            warning = (
                f"the vault cannot be locked ({e}); reading it without a lock: a prune "
                "started meanwhile on another device could make this job fail"
            )
            return cls(storage, sealer, mine, policy, now_ns=now_ns, held=False, warning=warning)
        # Written first, then checked: of two holders racing, at least one sees the other
        # (shared and exclusive alike), so two conflicting locks never both proceed.
        try:
            found = _conflicts(storage, sealer, mine, policy, watch)
        except BaseException:
            storage.delete(mine.key)
            raise
        if found:
            storage.delete(mine.key)
            raise LockedError(_describe(found[0][0], found[0][1], vault))
        return cls(storage, sealer, mine, policy, now_ns=now_ns)

    def _refresh_loop(self) -> None:
        interval = self._policy.refresh_every_ns / 1e9
        while not self._stop.wait(interval):
            try:
                self.rewrite()
            except StorageError:
                self.refresh_errors += 1  # retried at the next tick; staleness is far off
            if self.lost:
                return

    def rewrite(self) -> None:
        """Check the lock is still there, then rewrite it (the timer does this)."""
        with self._guard:
            if self._released or self.lost:
                return
            try:
                self._storage.stat(self.info.key)
            except ObjectNotFoundError:
                self.lost = (
                    f"the repository lock of this job ({self.info.key}) was removed by "
                    "someone else ('comet unlock --force'?) while the job ran; nothing "
                    "more was committed. Run the job again"
                )
                return
            self._seq += 1
            self.info = replace(self.info, time_ns=self._now_ns())
            self._storage.put(self.info.key, _encode(self._sealer, self.info, self._seq))
            self._refreshed_mono = self._policy.monotonic_ns()

    def storage_now(self) -> int | None:
        """The storage's current time, read from this lock rewritten just now (None
        when the backend keeps no times). Raises LockLostError."""
        self.rewrite()
        self.refresh()
        try:
            return self._storage.stat(self.info.key).mtime_ns
        except ObjectNotFoundError:
            return None

    def refresh(self) -> None:
        """Raise LockLostError if a refresh found the lock removed, or refreshing failed
        for so long that others may take the lock for stale (cheap: no I/O)."""
        if self.lost:
            raise LockLostError(self.lost)
        if self.held:
            silent = self._policy.monotonic_ns() - self._refreshed_mono
            if silent > self._policy.stale_after_ns:
                self.lost = (
                    f"the repository lock of this job could not be refreshed for "
                    f"{_minutes(silent)} ({self.refresh_errors} failed attempts), so other "
                    "devices may take it for stale; the job stopped without committing. "
                    "Run it again"
                )
                raise LockLostError(self.lost)

    def check(self) -> None:
        """Before a commit: confirm with the storage that the lock is still there.
        Raises LockLostError."""
        self.refresh()
        if not self.held:
            return
        try:
            self._storage.stat(self.info.key)
        except ObjectNotFoundError:
            self.lost = (
                f"the repository lock of this job ({self.info.key}) was removed by someone "
                "else ('comet unlock --force'?) while the job ran; nothing was committed. "
                "Run the job again"
            )
            raise LockLostError(self.lost) from None

    def release(self) -> None:
        """Stop refreshing and remove the lock. Idempotent."""
        with self._guard:
            if self._released:
                return
            self._released = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self.held:
            try:
                self._storage.delete(self.info.key)  # idempotent if someone removed it
            except StorageError:
                if not self.lost:
                    raise  # else the job's own LockLostError is the one to report

    def __enter__(self) -> RepositoryLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def probe_storage_time(
    storage: Storage, sealer: Sealer, policy: LockPolicy, now_ns: Callable[[], int]
) -> int | None:
    """The storage's current time: write a shared lock for a moment and read its
    storage time. None if the vault cannot be written or keeps no times."""
    pid = os.getpid()
    probe = LockInfo(
        f"locks/{secrets.token_hex(32)}",
        False,
        policy.hostname,
        pid,
        now_ns(),
        "unlock",
        policy.boot_id,
        _process_start(pid),
    )
    try:
        storage.put(probe.key, _encode(sealer, probe, 0))
    except StorageError:
        return None
    try:
        return storage.stat(probe.key).mtime_ns
    except ObjectNotFoundError:
        return None
    finally:
        storage.delete(probe.key)


def storage_time(storage: Storage, key: str, listed: list[LockInfo]) -> int | None:
    """The storage time of ``key`` (a lock just written) from a listing, or a stat."""
    for info in listed:
        if info.key == key and info.mtime_ns is not None:
            return info.mtime_ns
    try:
        return storage.stat(key).mtime_ns
    except ObjectNotFoundError:
        return None


def _conflicts(
    storage: Storage, sealer: Sealer, mine: LockInfo, policy: LockPolicy, watch: LockWatch
) -> list[tuple[LockInfo, int | None]]:
    """Live locks that conflict with ``mine``, each with its age by storage time."""
    listed = list_locks(storage, sealer)
    now = storage_time(storage, mine.key, listed)
    if now is None:  # ours could not be written: the newest other lock is a lower bound
        now = max((i.mtime_ns for i in listed if i.mtime_ns is not None), default=None)
    out = []
    for other in listed:
        if other.key == mine.key or not (mine.exclusive or other.exclusive):
            continue
        if staleness(other, policy=policy, storage_now=now, watch=watch) is None:
            age = None if now is None or other.mtime_ns is None else max(0, now - other.mtime_ns)
            out.append((other, age))
    return out


def _describe(info: LockInfo, age_ns: int | None, vault: str) -> str:
    kind = "an exclusive" if info.exclusive else "a shared"
    what = f" {info.purpose}" if info.purpose else ""
    age = "" if age_ns is None else f", last refreshed {_minutes(age_ns)} ago"
    return (
        f"the vault is locked: {kind}{what} lock is held by host {info.hostname} "
        f"(pid {info.pid}{age}). Wait for that job to finish; if it is not running, "
        f"remove the lock with 'comet unlock --vault {vault}' once it is stale, or at once "
        f"with 'comet unlock --vault {vault} --force'"
    )


__all__ = [
    "PRUNE_GRACE_NS",
    "LockInfo",
    "LockPolicy",
    "LockWatch",
    "RepositoryLock",
    "list_locks",
    "probe_storage_time",
    "process_alive",
    "staleness",
]
