"""``TreeCache``: the directory trees a mount lists, read from storage a window at a time.

A backup writes a directory's tree blob right after the trees of everything below it,
so in a pack the trees under a directory lie just before its own tree. A miss therefore
reads, in one ranged read, the window of tree blobs that ends with the one asked for:
the directories a walk (``find``, ``ls -R``, a file manager) opens next. Those blobs
are kept as stored (sealed, compressed: a third of their plaintext) and opened only when
a directory is listed, on the caller's thread: opening one tree costs less than handing
the work to another thread and back. So the FUSE loop answers most directories without
a thread hop, and the worker threads only do I/O.

The blobs of a pack come from its trailer (one small read per pack); a pack whose trailer
cannot be read is read a blob at a time. Every blob is verified when opened, whatever
listed it. Thread-safe.
"""

from __future__ import annotations

import contextlib
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import fields
from typing import Any

from comet.agent.errors import IntegrityError, RepositoryError
from comet.agent.repository.format import BlobType
from comet.agent.repository.pack import PackReader, pack_key
from comet.agent.repository.repository import Repository
from comet.agent.repository.tree import Node, NodeType, parse_tree_document
from comet.agent.storage.base import ObjectNotFoundError, StorageError

SEALED_BYTES = 32 << 20
WINDOW_BYTES = 2 << 20
DECODED_TREES = 64
_WORKERS = 2

_Entry = tuple[int, int, bytes]  # offset, length, tree id

Listing = list[dict[str, Any]]
"""A directory's nodes as stored (``Node.to_json`` form): what a mount shows of most
entries is a few of their fields, so the ``Node`` is built only for those opened."""

_NODE_FIELDS = frozenset(f.name for f in fields(Node))
_NODE_TYPES = frozenset(t.value for t in NodeType)


def decode_listing(data: bytes, what: str) -> Listing:
    """The nodes of a tree blob, checked as ``Tree.decode`` checks them (IntegrityError,
    UnsupportedFormatError) but left as parsed."""
    doc = parse_tree_document(data, what)
    nodes = doc.get("nodes")
    if not isinstance(nodes, list):
        raise IntegrityError(f"{what} has no node list")
    for n in nodes:
        if (
            not isinstance(n, dict)
            or not isinstance(n.get("name"), str)
            or n.get("type") not in _NODE_TYPES
            or not n.keys() <= _NODE_FIELDS
        ):
            raise IntegrityError(f"{what} has a malformed node")
    return nodes


class _PackTrees:
    """The tree blobs of one pack, by offset."""

    def __init__(self, entries: list[_Entry]) -> None:
        entries.sort()
        self.entries = entries
        self.ends = [offset + length for offset, length, _ in entries]

    def window(self, offset: int, length: int, size: int) -> list[_Entry]:
        """The entries ending in ``(end - size, end]`` where ``end`` closes the asked
        blob, or [] if the pack does not list it there."""
        end = offset + length
        last = bisect_right(self.ends, end) - 1
        if last < 0 or self.entries[last][0] != offset:
            return []
        first = bisect_left(self.ends, end - size + 1)
        return self.entries[first : last + 1]


class TreeCache:
    def __init__(
        self,
        repo: Repository,
        *,
        sealed_bytes: int = SEALED_BYTES,
        window_bytes: int = WINDOW_BYTES,
    ) -> None:
        self._repo = repo
        self._max_sealed = max(sealed_bytes, 1)
        self._window = max(min(window_bytes, self._max_sealed // 4), 1)
        self._lock = threading.Lock()
        self._sealed: OrderedDict[bytes, bytes] = OrderedDict()
        self._sealed_size = 0
        self._trees: OrderedDict[bytes, Listing] = OrderedDict()
        self._pending: dict[bytes, Future[None]] = {}
        self._packs: dict[bytes, _PackTrees | None] = {}
        self._pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="comet-mount-trees")
        self.window_reads = 0

    # --- on any thread, never blocking on storage --------------------------------------

    def cached(self, tree_id: bytes) -> Listing | None:
        """The tree if it is held (opening it if it is held sealed), else None. Raises
        IntegrityError or UnsupportedFormatError for a damaged or unknown tree."""
        with self._lock:
            tree = self._trees.get(tree_id)
            if tree is not None:
                self._trees.move_to_end(tree_id)
                return tree
            stored = self._sealed.pop(tree_id, None)
            if stored is None:
                return None
            self._sealed_size -= len(stored)
        return self._open(tree_id, stored)

    def _open(self, tree_id: bytes, stored: bytes) -> Listing:
        what = f"tree {tree_id.hex()}"
        tree = decode_listing(
            self._repo.sealer.open_blob(BlobType.TREE, tree_id, stored, what), what
        )
        with self._lock:
            self._trees[tree_id] = tree
            while len(self._trees) > DECODED_TREES:
                self._trees.popitem(last=False)
        return tree

    def prefetch(self, tree_ids: Iterable[bytes]) -> None:
        """Read the windows of these trees in the background, in this order, unless
        held or being read. Failures are dropped: whoever lists the directory meets them."""
        with self._lock:
            missing = [t for t in tree_ids if not self._held_or_pending(t)]
        if missing:
            self._pool.submit(self._prefetch, missing)

    def _held_or_pending(self, tree_id: bytes) -> bool:
        return tree_id in self._sealed or tree_id in self._trees or tree_id in self._pending

    def in_background(self, work: Callable[[], object]) -> None:
        """Run ``work`` on the pool; its failures are dropped."""

        def run() -> None:
            with contextlib.suppress(Exception):
                work()

        self._pool.submit(run)

    # --- on worker threads ------------------------------------------------------------

    def load(self, tree_id: bytes) -> Listing:
        """The tree, read from storage if needed. Raises RepositoryError subclasses or
        StorageError when it cannot be read."""
        tree = self.cached(tree_id)
        if tree is not None:
            return tree
        self._fetch_window(tree_id)
        tree = self.cached(tree_id)
        if tree is not None:
            return tree
        # Not in its window (the read failed, or it was evicted meanwhile): alone.
        what = f"tree {tree_id.hex()}"
        return decode_listing(self._repo.read_blob(BlobType.TREE, tree_id), what)

    def _prefetch(self, tree_ids: list[bytes]) -> None:
        for tree_id in tree_ids:
            with contextlib.suppress(RepositoryError, StorageError):
                self._fetch_window(tree_id)

    def _fetch_window(self, tree_id: bytes) -> None:
        """Make ``tree_id`` held sealed, with the trees before it in its pack, unless it
        is held or being read already (then wait for that read). Never raises for the
        window: a failed window read leaves the blobs to be read one by one."""
        with self._lock:
            if tree_id in self._sealed or tree_id in self._trees:
                return
            waiting = self._pending.get(tree_id)
        if waiting is not None:
            waiting.result()
            return
        loc = self._repo.locate(tree_id)  # BlobNotFoundError: a tree no index lists
        pack = self._pack_trees(loc.pack_id)
        entries = pack.window(loc.offset, loc.length, self._window) if pack else []
        if not entries:
            entries = [(loc.offset, loc.length, tree_id)]
        done: Future[None] = Future()
        with self._lock:
            claimed = [e for e in entries if not self._held_or_pending(e[2])]
            for e in claimed:
                self._pending[e[2]] = done
        if not claimed:
            return
        try:
            start = claimed[0][0]
            end = claimed[-1][0] + claimed[-1][1]
            data = self._read(loc.pack_id, start, end - start)
            with self._lock:
                self.window_reads += 1
                for offset, length, blob_id in claimed:
                    if blob_id not in self._trees and blob_id not in self._sealed:
                        stored = data[offset - start : offset - start + length]
                        self._sealed[blob_id] = stored
                        self._sealed_size += len(stored)
                while self._sealed_size > self._max_sealed and len(self._sealed) > 1:
                    _, old = self._sealed.popitem(last=False)
                    self._sealed_size -= len(old)
        except (RepositoryError, StorageError):
            pass  # the blobs are read alone, so the damage fails only what it touches
        finally:
            with self._lock:
                for _, _, blob_id in claimed:
                    if self._pending.get(blob_id) is done:
                        del self._pending[blob_id]
            done.set_result(None)

    def _pack_trees(self, pack_id: bytes) -> _PackTrees | None:
        with self._lock:
            if pack_id in self._packs:
                return self._packs[pack_id]
        try:
            listed = PackReader(self._repo.storage, self._repo.sealer).read_entries(pack_id)
            pack: _PackTrees | None = _PackTrees(
                [(e.offset, e.length, e.blob_id) for e in listed if e.blob_type == BlobType.TREE]
            )
        except (RepositoryError, StorageError):
            pack = None
        with self._lock:
            self._packs[pack_id] = pack
        return pack

    def _read(self, pack_id: bytes, offset: int, length: int) -> bytes:
        key = pack_key(pack_id)
        try:
            data = self._repo.storage.get(key, offset, length)
        except ObjectNotFoundError:
            raise IntegrityError(f"pack {pack_id.hex()} is missing from storage") from None
        if len(data) != length:
            raise IntegrityError(f"pack {pack_id.hex()} is truncated")
        return data

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
