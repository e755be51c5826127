"""The write pipeline: seal blobs on a small thread pool, fill packs, upload them in
parallel, then record them in index files.

Memory is bounded in bytes, not in items: blobs queued for sealing hold at most
``SEAL_QUEUE_BYTES`` of plaintext (one blob of any size is always let through), packs
being filled live in temporary files (``PackWriter``), and a pack is read back into
memory only by the upload that stores it, at most ``uploads`` at a time.

Order guarantees (docs/format.md, "Write order"): a blob enters the in-memory index only
after its pack is stored, and ``flush`` returns only after an index file covering every
pack written so far is stored.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from comet.agent.repository.format import PACK_TARGET_SIZE, BlobType
from comet.agent.repository.pack import PackWriter, encode_entries, pack_key
from comet.agent.storage.base import put_file

if TYPE_CHECKING:
    from comet.agent.repository.repository import Repository

INDEX_EVERY_PACKS = 64
# Also write an index once this many blobs wait for one: a 16 MiB pack of small files
# holds thousands of blobs, and each waiting entry costs ~48 B (its encoded table row)
# until it is written; counting packs alone let a first backup of many small files grow
# without bound.
INDEX_EVERY_BLOBS = 50_000
# Small blobs go to the sealing pool in batches: each hand-over wakes a worker, which
# then competes with the walk for the GIL, so a first backup of many small files
# handed over 64 at a time spent ~9 % of its walk's GIL time in submit.
BATCH_BYTES = 1 << 20
BATCH_BLOBS = 256
# Plaintext waiting for or being sealed: keeps both workers fed with typical 1 MiB
# chunks while capping what a run of 4 MiB chunks can hold.
SEAL_QUEUE_BYTES = 8 << 20


class BlobWriter:
    """Adds blobs to a repository. ``add`` is called from one thread; sealing and
    uploads run on internal pools. Use as a context manager or call ``close``."""

    def __init__(
        self,
        repo: Repository,
        *,
        workers: int = 2,
        uploads: int = 2,
        pack_size: int = PACK_TARGET_SIZE,
        on_pack_stored: Callable[[int], None] | None = None,
    ) -> None:
        self._repo = repo
        self._pack_size = pack_size
        self._seal_pool = ThreadPoolExecutor(workers, thread_name_prefix="comet-seal")
        self._upload_pool = ThreadPoolExecutor(uploads, thread_name_prefix="comet-upload")
        self._seal_bytes = 0  # plaintext bytes queued or being sealed
        self._seal_room = threading.Condition()
        self._upload_slots = threading.BoundedSemaphore(uploads)
        self._uploads = uploads
        self._lock = threading.Lock()
        self._index_lock = threading.Lock()
        # Packs being filled: a write and a hash update per blob, so not under ``_lock``,
        # which ``has`` and ``add`` take for every chunk.
        self._pack_lock = threading.Lock()
        self._packs: dict[BlobType, PackWriter] = {}
        self._queued: set[bytes] = set()
        self._futures: set[Future[None]] = set()
        self._batch: list[tuple[BlobType, bytes, bytes]] = []
        self._batch_bytes = 0
        # Stored packs not yet in an index file, with their entry tables already
        # encoded: ~48 B a blob instead of ~250 B as PackEntry tuples.
        self._unindexed: list[tuple[bytes, bytes]] = []
        self._unindexed_blobs = 0
        self._errors: list[BaseException] = []
        self._on_pack_stored = on_pack_stored
        self.uploaded_bytes = 0
        self.new_blobs = 0
        self.index_ids: list[bytes] = []
        # Every pack a blob of this writer's snapshot lives in: stored by this writer or
        # found in the index (deduplicated). Confirmed present before the commit.
        self.relied_packs: set[bytes] = set()

    def has(self, blob_id: bytes) -> bool:
        """True if the blob is stored or queued by this writer. A stored blob's pack is
        remembered in ``relied_packs``."""
        with self._lock:
            if blob_id in self._queued:
                return True
        pack_id = self._repo.index.pack_of(blob_id)
        if pack_id is None:
            return False
        self.relied_packs.add(pack_id)
        return True

    def add(self, blob_type: BlobType, blob_id: bytes, data: bytes) -> bool:
        """Queue a blob unless it is already stored or queued; return True if queued.

        ``data`` must not be modified afterwards. Raises the first error of a
        background seal or upload."""
        with self._lock:  # one lock for the failure check and the queued check
            if self._errors:
                raise self._errors[0]
            if blob_id in self._queued:
                return False
        pack_id = self._repo.index.pack_of(blob_id)
        if pack_id is not None:
            self.relied_packs.add(pack_id)
            return False
        with self._lock:
            self._queued.add(blob_id)
            self.new_blobs += 1
        # Small blobs are sealed in batches: one task per blob costs more than sealing it.
        batch = self._batch
        batch.append((blob_type, blob_id, data))
        self._batch_bytes += len(data)
        if self._batch_bytes >= BATCH_BYTES or len(batch) >= BATCH_BLOBS:
            self._submit_batch()
        return True

    def _submit_batch(self) -> None:
        batch, self._batch, size = self._batch, [], self._batch_bytes
        self._batch_bytes = 0
        if not batch:
            return
        with self._seal_room:
            # Wait for room; a batch bigger than the whole budget goes alone.
            while self._seal_bytes and self._seal_bytes + size > SEAL_QUEUE_BYTES:
                self._seal_room.wait()
            self._seal_bytes += size
        try:
            future = self._seal_pool.submit(self._seal_all, batch)
        except BaseException:
            self._release_seal_bytes(size)
            raise
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(functools.partial(self._seal_done, size))

    def _release_seal_bytes(self, size: int) -> None:
        with self._seal_room:
            self._seal_bytes -= size
            self._seal_room.notify_all()

    def _seal_all(self, batch: list[tuple[BlobType, bytes, bytes]]) -> None:
        for blob_type, blob_id, data in batch:
            self._seal(blob_type, blob_id, data)

    def _seal_done(self, size: int, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)
        self._release_seal_bytes(size)

    def _seal(self, blob_type: BlobType, blob_id: bytes, data: bytes) -> None:
        try:
            stored = self._repo.sealer.seal_blob(blob_type, blob_id, data)
            full = None
            with self._pack_lock:
                pack = self._packs.get(blob_type)
                if pack is None:  # a pack opens a temporary file: only when needed
                    pack = self._packs[blob_type] = PackWriter()
                pack.add(blob_id, blob_type, stored, len(data))
                if pack.size >= self._pack_size:
                    full = self._packs.pop(blob_type)
            if full is not None:
                self._upload(full)
        except BaseException as e:
            self._fail(e)

    def _upload(self, pack: PackWriter) -> None:
        self._upload_slots.acquire()
        try:
            pack_id = pack.seal(self._repo.sealer)
            self._upload_pool.submit(self._store_pack, pack_id, pack)
        except BaseException:
            pack.close()
            self._upload_slots.release()
            raise

    def _store_pack(self, pack_id: bytes, pack: PackWriter) -> None:
        entries = pack.entries
        try:
            size = pack.size
            # Streamed from the spool file where the storage can (a local vault copies
            # it in the kernel), else read into one buffer for the upload.
            put_file(self._repo.storage, pack_key(pack_id), pack.fileno(), size)
            self._repo.index.add_pack(pack_id, entries)
            table = encode_entries(entries)
            with self._lock:
                self.uploaded_bytes += size
                self.relied_packs.add(pack_id)
                self._unindexed.append((pack_id, table))
                self._unindexed_blobs += len(entries)
                for e in entries:
                    self._queued.discard(e.blob_id)
                write_index = (
                    len(self._unindexed) >= INDEX_EVERY_PACKS
                    or self._unindexed_blobs >= INDEX_EVERY_BLOBS
                )
            if write_index:
                self._write_index()
            if self._on_pack_stored is not None:
                self._on_pack_stored(size)
        except BaseException as e:
            self._fail(e)
        finally:
            pack.close()
            self._upload_slots.release()

    def _write_index(self) -> None:
        with self._index_lock:
            with self._lock:
                packs, self._unindexed = self._unindexed, []
                self._unindexed_blobs = 0
            if packs:
                self.index_ids.append(self._repo.save_index(packs))

    def _fail(self, e: BaseException) -> None:
        with self._lock:
            self._errors.append(e)

    def _raise_failure(self) -> None:
        with self._lock:
            if self._errors:
                raise self._errors[0]

    def flush(self) -> None:
        """Wait for every queued blob, store the partial packs and an index file."""
        self._submit_batch()
        while True:
            with self._lock:
                pending = set(self._futures)
            if not pending:
                break
            wait(pending)
        self._raise_failure()
        with self._pack_lock:
            packs = list(self._packs.values())
            self._packs.clear()
        for pack in packs:
            self._upload(pack)
        # Every upload holds a slot; taking them all waits for the uploads to finish.
        for _ in range(self._uploads):
            self._upload_slots.acquire()
        for _ in range(self._uploads):
            self._upload_slots.release()
        self._raise_failure()
        self._write_index()

    def checkpoint(self) -> int:
        """After a cancel: stop sealing and uploading, then store an index file for the
        packs already stored, so the next backup reuses them instead of uploading them
        again. Blobs not yet in a stored pack are dropped. Returns how many packs the
        index lists."""
        self.close()
        with self._lock:
            count = len(self._unindexed)
        self._write_index()
        return count

    def close(self) -> None:
        """Stop the pools without storing pending data (used on cancel and error)."""
        self._seal_pool.shutdown(wait=True, cancel_futures=True)
        self._upload_pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
