"""BlobCache without FUSE: bounded memory, failures not cached, read-ahead by pack."""

from __future__ import annotations

import os
import random
import threading

import pytest

from comet.agent.errors import IntegrityError
from comet.agent.mount.blob_cache import BlobCache
from comet.agent.repository import Repository
from comet.agent.repository.format import BlobType
from comet.agent.storage.faulty import Fault, FaultPlan, FaultRule, FaultyStorage
from comet.agent.storage.memory import MemoryStorage

KEY = b"c" * 32


def repo_with_blobs(storage: MemoryStorage, count: int, size: int) -> list[bytes]:
    repo = Repository.init(storage, KEY)
    ids = []
    with repo.blob_writer() as writer:
        for _ in range(count):
            data = os.urandom(size)
            blob_id = repo.sealer.blob_id(BlobType.DATA, data)
            writer.add(BlobType.DATA, blob_id, data)
            ids.append(blob_id)
        writer.flush()
    return ids


def test_cache_stays_within_its_bound_and_serves_right_bytes() -> None:
    storage = MemoryStorage()
    ids = repo_with_blobs(storage, 20, 100_000)
    repo = Repository.open(storage, KEY)
    cache: BlobCache[bytes] = BlobCache(repo, max_bytes=300_000)
    for blob_id in ids:
        assert cache.get(blob_id) == repo.read_blob(BlobType.DATA, blob_id)
        assert cache.cached_bytes <= 300_000
    assert cache.peek(ids[0]) is None and cache.peek(ids[-1]) is not None
    cache.close()


def test_a_failed_read_is_not_cached_and_read_ahead_does_not_poison_neighbours() -> None:
    inner = MemoryStorage()
    ids = repo_with_blobs(inner, 6, 50_000)
    faulty = FaultyStorage(
        inner, FaultPlan((FaultRule("get", Fault.CORRUPT, prefix="data/", calls=range(1, 3)),))
    )
    repo = Repository.open(faulty, KEY)
    cache: BlobCache[bytes] = BlobCache(repo, max_bytes=10 << 20)
    cache.read_ahead(ids)  # the pack read is corrupted: each blob is then judged alone
    done = threading.Event()
    got: list[bytes] = []

    def read_all() -> None:
        for blob_id in ids:
            try:
                got.append(cache.get(blob_id))
            except IntegrityError:
                got.append(b"")
        done.set()

    threading.Thread(target=read_all).start()
    assert done.wait(30)
    # Only the two corrupted reads failed, whichever blobs they hit; a retry reads them.
    assert sum(1 for g in got if not g) <= 2
    for blob_id in ids:
        assert cache.get(blob_id) == inner_blob(inner, blob_id)
    cache.close()


def inner_blob(storage: MemoryStorage, blob_id: bytes) -> bytes:
    return Repository.open(storage, KEY).read_blob(BlobType.DATA, blob_id)


def test_missing_blob_raises_every_time() -> None:
    storage = MemoryStorage()
    repo_with_blobs(storage, 1, 10)
    cache: BlobCache[bytes] = BlobCache(Repository.open(storage, KEY), max_bytes=1 << 20)
    for _ in range(2):
        with pytest.raises(Exception, match="no index"):
            cache.get(b"\x01" * 32)
    cache.close()


def test_readers_and_read_ahead_racing_never_hang() -> None:
    """Readers take over blobs queued for read-ahead while read-ahead keeps queueing
    them again (a tiny cache evicts all the time): every read must finish, right."""
    storage = MemoryStorage()
    ids = repo_with_blobs(storage, 40, 20_000)
    repo = Repository.open(storage, KEY)
    want = {b: repo.read_blob(BlobType.DATA, b) for b in ids}
    cache: BlobCache[bytes] = BlobCache(repo, max_bytes=60_000)
    stop = threading.Event()
    wrong: list[bytes] = []

    def ahead() -> None:
        while not stop.is_set():
            cache.read_ahead(ids)

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(300):
            blob_id = rng.choice(ids)
            if cache.get(blob_id) != want[blob_id]:
                wrong.append(blob_id)

    pusher = threading.Thread(target=ahead)
    pusher.start()
    readers = [threading.Thread(target=reader, args=(i,)) for i in range(6)]
    for t in readers:
        t.start()
    for t in readers:
        t.join(60)
    stop.set()
    pusher.join(10)
    assert not any(t.is_alive() for t in readers), "a reader hung"
    assert not wrong
    cache.close()
