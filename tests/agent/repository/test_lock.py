"""Repository locks: refreshed on a timer, lost locks noticed, staleness judged without
comparing device clocks (a dead process here, storage times, or watching)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from comet.agent.errors import LockedError, LockLostError
from comet.agent.repository import Repository
from comet.agent.repository.lock import LockPolicy, LockWatch, list_locks, staleness
from comet.agent.storage.base import ObjectInfo, Storage, StorageError
from comet.agent.storage.local import LocalStorage
from comet.agent.storage.memory import MemoryStorage

VAULT_KEY = bytes(range(32))
FAST = LockPolicy(stale_after_ns=2 * 10**9, refresh_every_ns=100 * 10**6, prune_grace_ns=3 * 10**9)


class FakeMonotonic:
    def __init__(self) -> None:
        self.ns = 10**12

    def __call__(self) -> int:
        return self.ns


def test_a_holder_rewrites_its_lock_on_a_timer_without_doing_io() -> None:
    storage = MemoryStorage()
    repo = Repository.init(storage, VAULT_KEY, lock_policy=FAST)
    with repo.lock(hostname="a") as lock:
        (first,) = list_locks(storage, repo.sealer)
        time.sleep(0.35)
        (later,) = list_locks(storage, repo.sealer)
        assert later.fingerprint != first.fingerprint  # rewritten, whatever the clocks
        lock.check()
    assert not list(storage.list("locks/"))


def test_a_removed_lock_stops_the_job_before_it_commits() -> None:
    storage = MemoryStorage()
    repo = Repository.init(storage, VAULT_KEY, lock_policy=FAST)
    lock = repo.lock(hostname="a")
    storage.delete(lock.info.key)  # 'comet unlock --force' on another device
    with pytest.raises(LockLostError, match="was removed"):
        lock.check()
    time.sleep(0.3)
    with pytest.raises(LockLostError):
        lock.refresh()  # the timer noticed too: cheap checks in the job's loop fail
    assert not list(storage.list("locks/"))  # the timer never wrote it back
    lock.release()


@pytest.mark.parametrize("skew_s", [3600, -3600], ids=["ahead", "behind"])
def test_skewed_wall_clocks_neither_free_a_live_lock_nor_block_forever(skew_s: int) -> None:
    storage_clock = [10**18]
    storage = MemoryStorage(clock=lambda: storage_clock[0])
    monotonic = FakeMonotonic()
    policy = replace(FAST, monotonic_ns=monotonic, hostname="device-b")
    holder = Repository.init(storage, VAULT_KEY, now_ns=lambda: time.time_ns())
    other = Repository.open(
        storage, VAULT_KEY, now_ns=lambda: time.time_ns() + skew_s * 10**9, lock_policy=policy
    )
    live = holder.lock(hostname="device-a")
    try:
        with pytest.raises(LockedError, match="host device-a"):
            other.lock(exclusive=True)
        # The holder dies without releasing: nothing rewrites its lock any more.
        live._stop.set()
        live._thread.join()  # type: ignore[union-attr]
        storage_clock[0] += policy.stale_after_ns + 1
        with other.lock(exclusive=True):
            pass
    finally:
        live.release()


def test_watching_alone_judges_a_lock_when_the_storage_keeps_no_times() -> None:
    monotonic = FakeMonotonic()
    policy = replace(FAST, monotonic_ns=monotonic, hostname="here")
    watch = LockWatch()
    storage = MemoryStorage()
    repo = Repository.init(storage, VAULT_KEY)
    lock = repo.lock(hostname="elsewhere")
    lock._stop.set()
    (info,) = list_locks(storage, repo.sealer)
    timeless = info.__class__(**{**info.__dict__, "mtime_ns": None})
    assert staleness(timeless, policy=policy, storage_now=None, watch=watch) is None
    monotonic.ns += policy.stale_after_ns // 2
    assert staleness(timeless, policy=policy, storage_now=None, watch=watch) is None
    monotonic.ns += policy.stale_after_ns
    reason = staleness(timeless, policy=policy, storage_now=None, watch=watch)
    assert reason is not None and "watched from this device" in reason
    # A rewrite (new bytes) restarts the watch: the holder is alive after all.
    changed = timeless.__class__(**{**timeless.__dict__, "fingerprint": b"new"})
    assert staleness(changed, policy=policy, storage_now=None, watch=watch) is None
    lock.release()


def test_a_sigkilled_holder_on_this_host_is_recognised_at_once(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    Repository.init(LocalStorage(vault), VAULT_KEY).close()
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from comet.agent.repository import Repository\n"
        "from comet.agent.storage.local import LocalStorage\n"
        f"repo = Repository.open(LocalStorage(Path({str(vault)!r})), {VAULT_KEY!r})\n"
        "lock = repo.lock(exclusive=True, purpose='prune')\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        repo = Repository.open(LocalStorage(vault), VAULT_KEY)
        with pytest.raises(
            LockedError, match=rf"exclusive prune lock is held by host .*pid {child.pid}"
        ):
            repo.lock()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        with repo.lock():  # no 30-minute wait
            pass
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


class _Racing:
    """A storage where an exclusive lock appears right after ours is written (another
    device taking it at the same moment)."""

    def __init__(self, inner: MemoryStorage, plant: bytes) -> None:
        self.inner = inner
        self.plant = plant

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)
        if key.startswith("locks/") and self.plant:
            self.inner.put("locks/" + "e" * 64, self.plant)
            self.plant = b""

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_a_shared_lock_is_rechecked_after_it_is_written() -> None:
    storage = MemoryStorage()
    repo = Repository.init(storage, VAULT_KEY)
    with repo.lock(exclusive=True, hostname="pruner") as exclusive:
        planted = storage.get(exclusive.info.key)
    racing = _Racing(storage, planted)
    reader = Repository.open(racing, VAULT_KEY)  # type: ignore[arg-type]
    with pytest.raises(LockedError, match="exclusive"):
        reader.lock(hostname="backup")
    assert [o.key for o in storage.list("locks/")] == ["locks/" + "e" * 64]  # ours is gone


class _ReadOnly:
    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    def put(self, key: str, data: bytes) -> None:
        raise StorageError(f"cannot write {key!r}: the vault is on a read-only filesystem")

    def delete(self, key: str) -> None:
        raise StorageError(f"cannot delete {key!r}: the vault is on a read-only filesystem")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_readers_go_on_without_a_lock_on_a_read_only_vault() -> None:
    storage = MemoryStorage()
    Repository.init(storage, VAULT_KEY)
    repo = Repository.open(_ReadOnly(storage), VAULT_KEY)  # type: ignore[arg-type]
    with repo.lock(for_reading=True) as lock:
        assert not lock.held and "read-only" in lock.warning
        lock.check()
    with pytest.raises(StorageError, match="read-only"):
        repo.lock()  # a writer still needs its lock


class _Flaky:
    """Lock rewrites fail (the storage is unreachable for a while)."""

    def __init__(self, inner: MemoryStorage) -> None:
        self.inner = inner
        self.failing = False

    def put(self, key: str, data: bytes) -> None:
        if self.failing:
            raise StorageError("connection lost")
        self.inner.put(key, data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_a_lock_that_cannot_be_refreshed_for_the_stale_period_stops_the_job() -> None:
    storage = MemoryStorage()
    Repository.init(storage, VAULT_KEY)
    flaky = _Flaky(storage)
    repo = Repository.open(flaky, VAULT_KEY, lock_policy=FAST)  # type: ignore[arg-type]
    lock = repo.lock()
    flaky.failing = True
    time.sleep(0.5)
    lock.refresh()  # a few failed refreshes are tolerated
    time.sleep(FAST.stale_after_ns / 1e9)
    assert lock.refresh_errors > 3
    with pytest.raises(LockLostError, match="could not be refreshed"):
        lock.check()
    flaky.failing = False
    lock.release()
    assert not list(storage.list("locks/"))  # still removed when the storage is back
