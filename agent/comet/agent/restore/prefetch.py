"""``PackPrefetcher``: reads and opens (decrypts, decompresses, verifies) the blobs of a
list of packs on worker threads, ahead of the thread that writes them out.

zstandard, cryptography and blake3 release the GIL, so opening blobs overlaps with the
consumer's file writes, and two workers open the blobs of two packs at once: restoring
large files is bound by opening blobs, which one thread did at about half the speed the
consumer writes them. Memory is bounded: a worker stops producing while more than
``budget`` bytes of plaintext wait to be consumed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from comet.agent.repository.index import BlobLocation
from comet.agent.repository.repository import Repository

# Plaintext queued for the consumer, and handed over in batches of about this size: with
# two workers each holding a batch and a read run, 4 MiB and 1 MiB batches held ~11 MiB
# at a small-file restore's peak; the consumer still never waits for a large file's.
_BUDGET = 2 << 20
_BATCH_BYTES = 512 << 10
_BATCH_BLOBS = 256
_WORKERS = 2

PackWork = tuple[bytes, list[tuple[bytes, BlobLocation]]]
"""A pack id and the blobs to read from it."""


@dataclass(frozen=True)
class Blobs:
    """Opened blobs of one pack, in pack order."""

    pack_id: bytes
    blobs: list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class PackEnd:
    """The worker is done with a pack. ``error`` is what stopped it early, if anything;
    blobs of the pack not yet handed over were not read."""

    pack_id: bytes
    error: Exception | None


class _Stopped(Exception):
    pass


class PackPrefetcher:
    """Iterate to receive ``Blobs`` and ``PackEnd`` items. Packs are taken in the given
    order by ``workers`` threads, so the items of different packs interleave; those of
    one pack come in pack order, its ``PackEnd`` last. Call ``close`` (or use as a
    context manager) to stop the workers early."""

    def __init__(
        self,
        repo: Repository,
        work: list[PackWork],
        *,
        budget: int = _BUDGET,
        workers: int = _WORKERS,
    ) -> None:
        self._repo = repo
        self._work = iter(work)
        self._budget = budget
        self._cond = threading.Condition()
        self._items: deque[tuple[Blobs | PackEnd, int]] = deque()
        self._queued_bytes = 0
        self._stopped = False
        self._failure: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._run, name="comet-restore-read", daemon=True)
            for _ in range(min(workers, len(work)))
        ]
        self._running = len(self._threads)
        for thread in self._threads:
            thread.start()

    # --- worker ---------------------------------------------------------------------

    def _put(self, item: Blobs | PackEnd, size: int) -> None:
        with self._cond:
            while not self._stopped and self._items and self._queued_bytes + size > self._budget:
                self._cond.wait()
            if self._stopped:
                raise _Stopped
            self._items.append((item, size))
            self._queued_bytes += size
            self._cond.notify_all()

    def _next(self) -> PackWork | None:
        with self._cond:
            if self._stopped or self._failure is not None:
                return None
            return next(self._work, None)

    def _run(self) -> None:
        try:
            while (pack := self._next()) is not None:
                pack_id, blobs = pack
                batch: list[tuple[bytes, bytes]] = []
                size = 0
                error: Exception | None = None
                try:
                    for blob_id, data in self._repo.read_pack_blobs(pack_id, blobs):
                        batch.append((blob_id, data))
                        size += len(data)
                        if size >= _BATCH_BYTES or len(batch) >= _BATCH_BLOBS:
                            self._put(Blobs(pack_id, batch), size)
                            batch, size = [], 0
                except _Stopped:
                    return
                except Exception as e:  # handed to the consumer, which decides
                    error = e
                if batch:
                    self._put(Blobs(pack_id, batch), size)
                self._put(PackEnd(pack_id, error), 0)
        except _Stopped:
            return
        except BaseException as e:
            with self._cond:
                self._failure = self._failure or e
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    # --- consumer -------------------------------------------------------------------

    def __iter__(self) -> Iterator[Blobs | PackEnd]:
        while True:
            with self._cond:
                while not self._items and self._running:
                    self._cond.wait()
                if not self._items:
                    if self._failure is not None:
                        raise self._failure
                    return
                item, size = self._items.popleft()
                self._queued_bytes -= size
                self._cond.notify_all()
            yield item

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._items.clear()
            self._queued_bytes = 0
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> PackPrefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
