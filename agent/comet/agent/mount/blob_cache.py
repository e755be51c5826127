"""``BlobCache``: opened blobs of one type kept in a bounded LRU, fetched on demand and
read ahead on a small worker pool, pack by pack (``Repository.read_pack_blobs`` joins
adjacent blobs into one ranged read, as the restore's prefetcher does), kept as
``opener`` makes them, sized by their plaintext. A mount keeps file data here; its
directory trees go through ``TreeCache``.

Thread-safe: FUSE reads call ``get`` from many threads; a blob being fetched is fetched
once and its readers wait for it. Failed fetches are not cached, so a later read retries.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from comet.agent.repository.format import BlobType
from comet.agent.repository.index import BlobLocation
from comet.agent.repository.repository import Repository

_READ_AHEAD_WORKERS = 2

T = TypeVar("T")


def _as_bytes(blob_id: bytes, data: bytes) -> bytes:
    return data


class BlobCache(Generic[T]):
    def __init__(
        self,
        repo: Repository,
        *,
        max_bytes: int,
        blob_type: BlobType = BlobType.DATA,
        opener: Callable[[bytes, bytes], T] = _as_bytes,  # type: ignore[assignment]
    ) -> None:
        self._repo = repo
        self._max_bytes = max(max_bytes, 1)
        self._type = blob_type
        self._open = opener
        self._lock = threading.Lock()
        self._blobs: OrderedDict[bytes, tuple[T, int]] = OrderedDict()
        self._bytes = 0
        self._pending: dict[bytes, Future[T]] = {}
        self._started: set[bytes] = set()  # pending blobs someone is reading right now
        self._pool = ThreadPoolExecutor(_READ_AHEAD_WORKERS, thread_name_prefix="comet-mount-ahead")
        self.fetched_blobs = 0

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def peek(self, blob_id: bytes) -> T | None:
        """The blob if it is cached now; never reads storage."""
        with self._lock:
            entry = self._blobs.get(blob_id)
            if entry is None:
                return None
            self._blobs.move_to_end(blob_id)
            return entry[0]

    def get(self, blob_id: bytes) -> T:
        """One opened blob. Raises RepositoryError (IntegrityError, BlobNotFoundError)
        or StorageError when it cannot be read."""
        with self._lock:
            entry = self._blobs.get(blob_id)
            if entry is not None:
                self._blobs.move_to_end(blob_id)
                return entry[0]
            pending = self._pending.get(blob_id)
            if pending is None:
                pending = self._pending[blob_id] = Future()
            # Queued for read-ahead but not started: read it now rather than wait
            # behind the queue (a depth-first walk needs the newest directory first).
            owner = blob_id not in self._started
            self._started.add(blob_id)
        if not owner:
            return pending.result()
        try:
            raw = self._repo.read_blob(self._type, blob_id)
            value = self._open(blob_id, raw)
        except BaseException as e:
            self._settle(blob_id, pending, error=e)
            raise
        self._settle(blob_id, pending, value=(value, len(raw)))
        return value

    def read_ahead(self, blob_ids: list[bytes]) -> None:
        """Fetch these blobs in the background, grouped by pack, unless cached or being
        fetched. Failures are dropped: the reader that needs the blob meets them."""
        wanted: dict[bytes, list[tuple[bytes, BlobLocation]]] = defaultdict(list)
        claimed: dict[bytes, Future[T]] = {}
        with self._lock:
            for blob_id in blob_ids:
                if blob_id in self._blobs or blob_id in self._pending or blob_id in claimed:
                    continue
                loc = self._repo.index.lookup(blob_id)
                if loc is None or loc.blob_type != self._type:
                    continue
                claimed[blob_id] = self._pending[blob_id] = Future()
                wanted[loc.pack_id].append((blob_id, loc))
        for pack_id, blobs in wanted.items():
            futures = {b: claimed[b] for b, _ in blobs}
            self._pool.submit(self._fetch_pack, pack_id, blobs, futures)

    def _fetch_pack(
        self,
        pack_id: bytes,
        blobs: list[tuple[bytes, BlobLocation]],
        futures: dict[bytes, Future[T]],
    ) -> None:
        with self._lock:
            # Skip blobs a reader took over meanwhile (and may already have settled).
            blobs = [
                (b, loc)
                for b, loc in blobs
                if self._pending.get(b) is futures[b] and b not in self._started
            ]
            futures = {b: futures[b] for b, _ in blobs}
            self._started.update(futures)
        if not blobs:
            return
        try:
            for blob_id, raw in self._repo.read_pack_blobs(pack_id, blobs):
                value = (self._open(blob_id, raw), len(raw))
                self._settle(blob_id, futures.pop(blob_id), value=value)
        except Exception:
            # One damaged blob stops the pack read; the others are judged one by one,
            # so a damaged blob fails only the reads that need it.
            for blob_id, future in futures.items():
                try:
                    raw = self._repo.read_blob(self._type, blob_id)
                    value = (self._open(blob_id, raw), len(raw))
                except Exception as e:
                    self._settle(blob_id, future, error=e)
                else:
                    self._settle(blob_id, future, value=value)

    def _settle(
        self,
        blob_id: bytes,
        future: Future[T],
        *,
        value: tuple[T, int] | None = None,
        error: BaseException | None = None,
    ) -> None:
        with self._lock:
            if self._pending.get(blob_id) is future:
                del self._pending[blob_id]
                self._started.discard(blob_id)
            if value is not None:
                self.fetched_blobs += 1
                if blob_id not in self._blobs:
                    self._blobs[blob_id] = value
                    self._bytes += value[1]
                while self._bytes > self._max_bytes and len(self._blobs) > 1:
                    _, (_, size) = self._blobs.popitem(last=False)
                    self._bytes -= size
        if future.done():  # never expected; a waiter must not be left hanging either way
            return
        if error is not None:
            future.set_exception(error)
        else:
            assert value is not None
            future.set_result(value[0])

    def in_background(self, work: Callable[[], object]) -> None:
        """Run ``work`` on the read-ahead pool; its failures are dropped (whoever needs
        the data meets them again)."""

        def run() -> None:
            with contextlib.suppress(Exception):
                work()

        self._pool.submit(run)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
