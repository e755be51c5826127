"""``BlobCache``: opened data blobs kept in a bounded LRU, fetched on demand and read
ahead on a small worker pool, pack by pack (``Repository.read_pack_blobs`` joins
adjacent blobs into one ranged read, as the restore's prefetcher does).

Thread-safe: FUSE reads call ``get`` from many threads; a blob being fetched is fetched
once and its readers wait for it. Failed fetches are not cached, so a later read retries.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor

from comet.agent.repository.format import BlobType
from comet.agent.repository.index import BlobLocation
from comet.agent.repository.repository import Repository

_READ_AHEAD_WORKERS = 2


class BlobCache:
    def __init__(self, repo: Repository, *, max_bytes: int) -> None:
        self._repo = repo
        self._max_bytes = max(max_bytes, 1)
        self._lock = threading.Lock()
        self._blobs: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._pending: dict[bytes, Future[bytes]] = {}
        self._pool = ThreadPoolExecutor(_READ_AHEAD_WORKERS, thread_name_prefix="comet-mount-ahead")
        self.fetched_blobs = 0

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def get(self, blob_id: bytes) -> bytes:
        """The plaintext of one data blob. Raises RepositoryError (IntegrityError,
        BlobNotFoundError) or StorageError when it cannot be read."""
        with self._lock:
            data = self._blobs.get(blob_id)
            if data is not None:
                self._blobs.move_to_end(blob_id)
                return data
            pending = self._pending.get(blob_id)
            if pending is None:
                pending = self._pending[blob_id] = Future()
                owner = True
            else:
                owner = False
        if not owner:
            return pending.result()
        try:
            data = self._repo.read_blob(BlobType.DATA, blob_id)
        except BaseException as e:
            self._settle(blob_id, pending, error=e)
            raise
        self._settle(blob_id, pending, data=data)
        return data

    def read_ahead(self, blob_ids: list[bytes]) -> None:
        """Fetch these blobs in the background, grouped by pack, unless cached or being
        fetched. Failures are dropped: the reader that needs the blob meets them."""
        wanted: dict[bytes, list[tuple[bytes, BlobLocation]]] = defaultdict(list)
        claimed: dict[bytes, Future[bytes]] = {}
        with self._lock:
            for blob_id in blob_ids:
                if blob_id in self._blobs or blob_id in self._pending or blob_id in claimed:
                    continue
                loc = self._repo.index.lookup(blob_id)
                if loc is None or loc.blob_type != BlobType.DATA:
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
        futures: dict[bytes, Future[bytes]],
    ) -> None:
        try:
            for blob_id, data in self._repo.read_pack_blobs(pack_id, blobs):
                self._settle(blob_id, futures.pop(blob_id), data=data)
        except Exception:
            # One damaged blob stops the pack read; the others are judged one by one,
            # so a damaged blob fails only the reads that need it.
            for blob_id, future in futures.items():
                try:
                    data = self._repo.read_blob(BlobType.DATA, blob_id)
                except Exception as e:
                    self._settle(blob_id, future, error=e)
                else:
                    self._settle(blob_id, future, data=data)

    def _settle(
        self,
        blob_id: bytes,
        future: Future[bytes],
        *,
        data: bytes | None = None,
        error: BaseException | None = None,
    ) -> None:
        with self._lock:
            if self._pending.get(blob_id) is future:
                del self._pending[blob_id]
            if data is not None:
                self.fetched_blobs += 1
                if blob_id not in self._blobs:
                    self._blobs[blob_id] = data
                    self._bytes += len(data)
                while self._bytes > self._max_bytes and len(self._blobs) > 1:
                    _, old = self._blobs.popitem(last=False)
                    self._bytes -= len(old)
        if error is not None:
            future.set_exception(error)
        else:
            assert data is not None
            future.set_result(data)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
