"""``OrderedBlobs``: blobs handed out in the order a sequential target consumes them,
fetched with the same batched, pack-ordered reads as a directory restore.

The consumption order is known before the first byte is read (the engine plans the
whole walk first). It is cut into windows of about ``window`` bytes; inside a window
every pack is read once (with its blobs needed within the next window, so a pack
that straddles two windows is read once too), its blobs in offset order with adjacent
ones coalesced into one ranged read (``Repository.read_pack_blobs``), on the
``PackPrefetcher`` worker thread. A blob that arrives before it is needed waits in
memory; a blob used again later (the same content in two files) is kept for its next
use while less than ``keep`` bytes are kept, and otherwise read again when needed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import islice

from comet.agent.errors import BlobNotFoundError, IntegrityError
from comet.agent.repository.format import BlobType
from comet.agent.repository.index import BlobLocation
from comet.agent.repository.repository import Repository
from comet.agent.restore.prefetch import Blobs, PackPrefetcher, PackWork

_WINDOW = 32 << 20
_KEEP = 32 << 20
_UNREADABLE = (IntegrityError, BlobNotFoundError)


def plan_work(
    needs: Sequence[tuple[bytes, BlobLocation]], window: int = _WINDOW
) -> tuple[list[PackWork], dict[bytes, int]]:
    """Pack reads for ``needs`` (blob id and location, in consumption order) and, for
    each blob, the index of the work item that delivers it."""
    work: list[PackWork] = []
    where: dict[bytes, int] = {}
    group: dict[bytes, list[tuple[bytes, BlobLocation]]] = defaultdict(list)
    planned: set[bytes] = set()
    size = 0

    def close_window(following: int) -> None:
        # A pack whose blobs straddle the window's end (a file's chunks alternate
        # between the packs being filled at backup time) would be read again in the
        # next window: its blobs needed within one more window come along now.
        ahead = 0
        for blob_id, loc in islice(needs, following, None):
            if ahead >= window:
                break
            ahead += loc.raw_length
            if loc.pack_id in group and blob_id not in planned:
                planned.add(blob_id)
                group[loc.pack_id].append((blob_id, loc))
        for pack_id, blobs in group.items():  # packs in order of first use
            for blob_id, _ in blobs:
                where[blob_id] = len(work)
            work.append((pack_id, blobs))
        group.clear()

    for index, (blob_id, loc) in enumerate(needs):
        if blob_id in planned:
            continue
        planned.add(blob_id)
        group[loc.pack_id].append((blob_id, loc))
        size += loc.raw_length
        if size >= window:
            close_window(index + 1)
            size = 0
    close_window(len(needs))
    return work, where


class OrderedBlobs:
    """``get`` each needed blob in the planned order (``forget`` the ones that will not
    be consumed after all). Unreadable blobs raise IntegrityError/BlobNotFoundError from
    ``get``, so the engine can zero-fill them; other read errors end the restore."""

    def __init__(
        self,
        repo: Repository,
        needs: Sequence[tuple[bytes, BlobLocation]],
        *,
        window: int = _WINDOW,
        keep: int = _KEEP,
    ) -> None:
        self._repo = repo
        self._uses = Counter(blob_id for blob_id, _ in needs)
        work, self._where = plan_work(needs, window)
        self._keep = keep
        self._held: dict[bytes, bytes] = {}
        self._reuse: set[bytes] = set()  # held after a use, for a later one
        self._kept = 0  # their bytes
        self._ended = 0  # work items fully received
        # One worker: work items must end in the planned order (``_ended`` counts them).
        self._prefetcher = PackPrefetcher(repo, work, workers=1)
        self._items = iter(self._prefetcher)

    def _pull_until(self, blob_id: bytes) -> None:
        wanted = self._where.get(blob_id, -1)
        while blob_id not in self._held and self._ended <= wanted:
            item = next(self._items, None)
            if item is None:
                return
            if isinstance(item, Blobs):
                for got, data in item.blobs:
                    if self._uses[got] > 0:
                        self._held.setdefault(got, data)
                continue
            self._ended += 1
            if item.error is not None and not isinstance(item.error, _UNREADABLE):
                raise item.error
            # An unreadable pack: its missing blobs are read one by one in ``get``, so
            # only the damaged ones are lost.

    def get(self, blob_id: bytes) -> bytes:
        if blob_id not in self._held:
            self._pull_until(blob_id)
        data = self._held.pop(blob_id, None)
        if data is not None and blob_id in self._reuse:
            self._reuse.discard(blob_id)
            self._kept -= len(data)
        if data is None:
            data = self._repo.read_blob(BlobType.DATA, blob_id)
        self._uses[blob_id] -= 1
        if self._uses[blob_id] > 0 and self._kept + len(data) <= self._keep:
            self._held[blob_id] = data
            self._reuse.add(blob_id)
            self._kept += len(data)
        return data

    def forget(self, blob_id: bytes) -> None:
        self._uses[blob_id] -= 1
        if self._uses[blob_id] <= 0:
            data = self._held.pop(blob_id, None)
            if data is not None and blob_id in self._reuse:
                self._reuse.discard(blob_id)
                self._kept -= len(data)

    def close(self) -> None:
        self._prefetcher.close()
