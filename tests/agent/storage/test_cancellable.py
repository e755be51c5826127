"""A cancel reaches a transfer in progress: a large upload to a slow storage is
abandoned within a fraction of a second, new transfers are refused, and the cleanup a
job does inside ``shielded`` (its checkpoint index) still goes through."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from comet.agent.cancel import CancelToken
from comet.agent.errors import CancelledError
from comet.agent.storage.base import read_file
from comet.agent.storage.cancellable import CancellableStorage
from comet.agent.storage.memory import MemoryStorage


class SlowStorage(MemoryStorage):
    """A storage whose uploads of large objects take ``seconds`` (a slow link)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def put(self, key: str, data: bytes) -> None:
        if len(data) > 1 << 20:
            time.sleep(self.seconds)
        super().put(key, data)


def test_a_large_upload_in_progress_is_abandoned_on_cancel() -> None:
    token = CancelToken()
    storage = CancellableStorage(SlowStorage(10), token)
    threading.Timer(0.3, token.cancel, args=("cancelled by a test",)).start()
    started = time.monotonic()
    with pytest.raises(CancelledError, match="cancelled by a test"):
        storage.put("data/pack", b"x" * (4 << 20))
    assert time.monotonic() - started < 1.5


def test_after_a_cancel_only_shielded_cleanup_goes_through() -> None:
    token = CancelToken()
    inner = SlowStorage(0)
    storage = CancellableStorage(inner, token)
    storage.put("locks/a", b"lock")
    token.cancel("cancelled by a test")
    with pytest.raises(CancelledError):
        storage.put("data/b", b"pack")
    with pytest.raises(CancelledError):
        storage.get("locks/a")
    with token.shielded():
        storage.put("index/c", b"checkpoint")
        storage.put("index/d", b"y" * (2 << 20))  # large and shielded: waits for it
    storage.delete("locks/a")  # a lock is still released
    assert sorted(i.key for i in inner.list("")) == ["index/c", "index/d"]


def test_a_failed_large_upload_raises_its_own_error() -> None:
    class Broken(MemoryStorage):
        def put(self, key: str, data: bytes) -> None:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        CancellableStorage(Broken(), CancelToken()).put("data/x", b"z" * (2 << 20))


def test_an_abandoned_file_upload_reads_its_own_descriptor(tmp_path: Path) -> None:
    """A cancel abandons a streamed upload and the caller closes its file at once: the
    upload still running copies the file it was given, not whatever reuses the number."""

    class SlowFileStorage(MemoryStorage):
        def put_file(self, key: str, fd: int, size: int) -> None:
            time.sleep(0.6)
            self.put(key, read_file(fd, size))

    token = CancelToken()
    inner = SlowFileStorage()
    storage = CancellableStorage(inner, token)
    pack = tmp_path / "pack"
    pack.write_bytes(b"p" * (2 << 20))
    fd = os.open(pack, os.O_RDONLY)
    threading.Timer(0.1, token.cancel, args=("cancelled by a test",)).start()
    try:
        with pytest.raises(CancelledError):
            storage.put_file("data/pack", fd, 2 << 20)
    finally:
        os.close(fd)
    other = tmp_path / "other"
    other.write_bytes(b"o" * (2 << 20))
    reused = os.open(other, os.O_RDONLY)  # most likely the number just closed
    try:
        deadline = time.monotonic() + 5
        while "data/pack" not in {i.key for i in inner.list("")}:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.close(reused)
    assert inner.get("data/pack") == b"p" * (2 << 20)
