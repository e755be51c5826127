"""The Storage contract, checked against every backend (see conftest.BACKENDS)."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from comet.agent.storage.base import (
    InvalidKeyError,
    ObjectInfo,
    ObjectNotFoundError,
    Storage,
    StorageError,
)
from comet.agent.storage.retry import RetryingStorage
from tests.agent.storage.conftest import Backend


def listing(storage: Storage, prefix: str = "") -> dict[str, int]:
    found = {info.key: info.size for info in storage.list(prefix)}
    assert len(found) == len(list(storage.list(prefix))), "a key was listed twice"
    return found


@pytest.mark.parametrize("size", [0, 1, 5 * 1024 * 1024 + 3], ids=["empty", "1B", "5MiB"])
def test_put_get_roundtrip(storage: Storage, size: int) -> None:
    data = os.urandom(size)
    storage.put("data/ab/object", data)
    assert storage.get("data/ab/object") == data
    info = storage.stat("data/ab/object")
    assert (info.key, info.size) == ("data/ab/object", size)
    assert isinstance(info, ObjectInfo)


def test_storage_times_come_from_the_storage_and_advance(storage: Storage) -> None:
    storage.put("locks/a", b"1")
    first = storage.stat("locks/a").mtime_ns
    (listed,) = storage.list("locks/")
    assert listed.mtime_ns == first
    # A rewrite gets a new storage time (S3 and SFTP keep whole seconds).
    time.sleep(1.05)
    storage.put("locks/a", b"2")
    second = storage.stat("locks/a").mtime_ns
    assert second is not None and second > first
    assert storage.remove_temporary(second + 10**9) == ()  # puts leave no temp files


def test_overwrite_replaces_whole_object(storage: Storage) -> None:
    storage.put("lock", b"first version, longer")
    storage.put("lock", b"second")
    assert storage.get("lock") == b"second"
    assert storage.stat("lock").size == 6
    assert listing(storage) == {"lock": 6}


def test_ranged_get(storage: Storage) -> None:
    data = bytes(range(256)) * 40
    size = len(data)
    storage.put("pack", data)
    assert storage.get("pack", 10) == data[10:]
    assert storage.get("pack", 10, 100) == data[10:110]
    assert storage.get("pack", 0, size) == data
    assert storage.get("pack", size - 5, 5) == data[-5:]
    assert storage.get("pack", 7, 0) == b""
    assert storage.get("pack", size) == b""


@pytest.mark.parametrize(
    ("offset", "length"), [(10241, None), (10240 - 5, 10), (0, 10241), (20000, 1)]
)
def test_ranged_get_beyond_end_fails(storage: Storage, offset: int, length: int | None) -> None:
    storage.put("pack", bytes(10240))
    with pytest.raises(StorageError) as info:
        storage.get("pack", offset, length)
    assert not isinstance(info.value, ObjectNotFoundError)


def test_missing_object(storage: Storage) -> None:
    storage.put("data/present", b"x")
    for key in ("data/absent", "absent", "data"):
        with pytest.raises(ObjectNotFoundError):
            storage.get(key)
        with pytest.raises(ObjectNotFoundError):
            storage.get(key, 1, 2)
        with pytest.raises(ObjectNotFoundError):
            storage.stat(key)


def test_delete_is_idempotent(storage: Storage) -> None:
    storage.put("index/1", b"abc")
    storage.delete("index/1")
    storage.delete("index/1")
    storage.delete("never/written")
    with pytest.raises(ObjectNotFoundError):
        storage.get("index/1")
    assert listing(storage) == {}


def test_list_of_empty_storage(storage: Storage) -> None:
    assert listing(storage) == {}
    assert listing(storage, "data/") == {}


def test_list_with_prefix(storage: Storage) -> None:
    objects = {
        "data/3f/aa": b"1",
        "data/3f/ab": b"22",
        "data/40/cc": b"333",
        "data/3": b"4444",
        "datax/1": b"55555",
        "index/1": b"",
        "lock": b"7777777",
    }
    for key, data in objects.items():
        storage.put(key, data)
    sizes = {key: len(data) for key, data in objects.items()}

    def expect(prefix: str) -> dict[str, int]:
        return {k: v for k, v in sizes.items() if k.startswith(prefix)}

    assert listing(storage) == sizes
    for prefix in ("data/", "data/3f/", "data/3", "data/3f/a", "dat", "data", "lock", "index/"):
        assert listing(storage, prefix) == expect(prefix), prefix
    assert listing(storage, "nothing/") == {}
    assert listing(storage, "data/3f/aa/") == {}


def test_list_skips_inflight_uploads(staging_backend: Backend) -> None:
    backend = staging_backend
    assert backend.plant_partial is not None
    backend.storage.put("data/aa/done", b"done")
    backend.plant_partial("data/aa/half", b"half of it")
    backend.plant_partial("data/aa/done", b"newer")
    assert listing(backend.storage) == {"data/aa/done": 4}
    assert listing(backend.storage, "data/aa/") == {"data/aa/done": 4}
    assert backend.storage.get("data/aa/done") == b"done"
    with pytest.raises(ObjectNotFoundError):
        backend.storage.stat("data/aa/half")


BAD_KEYS = ["../x", "/abs", "a//b", "", "a/../b", "./a", "a/", "a b", "a\\b", "a~b", ".."]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_refused(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        storage.put(key, b"x")
    with pytest.raises(InvalidKeyError):
        storage.get(key)
    with pytest.raises(InvalidKeyError):
        storage.stat(key)
    with pytest.raises(InvalidKeyError):
        storage.delete(key)
    assert listing(storage) == {}


@pytest.mark.parametrize("prefix", ["../", "/abs", "a//", "..", "a b"])
def test_invalid_prefixes_refused(storage: Storage, prefix: str) -> None:
    with pytest.raises(InvalidKeyError):
        storage.list(prefix)


def test_concurrent_puts(storage: Storage) -> None:
    def worker(n: int) -> None:
        for i in range(6):
            storage.put(f"data/{n:02x}/{i}", bytes([n]) * (1000 * i + n))

    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(worker, n) for n in range(8)]:
            future.result()

    expected = {f"data/{n:02x}/{i}": 1000 * i + n for n in range(8) for i in range(6)}
    assert listing(storage, "data/") == expected
    for n in range(8):
        assert storage.get(f"data/{n:02x}/5") == bytes([n]) * (5000 + n)


def test_concurrent_overwrites_of_one_key(storage: Storage) -> None:
    # moto_server sometimes answers concurrent overwrites of one key with a 500 (its
    # put computes the ETag from a buffer a concurrent put has just closed). A 500 is
    # transient, so these puts go through the retry wrapper, as they do in the agent.
    retrying = RetryingStorage(storage, attempts=10, sleep=lambda _: None)

    def worker(n: int) -> None:
        for _ in range(6):
            retrying.put("lock", bytes([n]) * (3000 + n))

    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(worker, n) for n in range(8)]:
            future.result()

    value = storage.get("lock")
    assert value == bytes([value[0]]) * (3000 + value[0])
    assert listing(storage) == {"lock": len(value)}
