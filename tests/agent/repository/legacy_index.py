"""The blob index as it was before the compact one (4096 buckets of full 32-byte ids and
17-byte records in memory): the oracle the property tests compare the new index with.
Test-only; kept verbatim in behaviour, not used by the agent."""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable, Iterator

from comet.agent.repository.format import ID_SIZE, BlobType
from comet.agent.repository.index import BlobLocation
from comet.agent.repository.pack import PackEntry

_REC = struct.Struct("<IIIIB")  # pack number, offset, length, raw length, blob type
_BUCKET_BITS = 12


def _bucket(blob_id: bytes) -> int:
    return (blob_id[0] << 4) | (blob_id[1] >> 4)


class LegacyBlobIndex:
    """Maps blob ids to locations. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = [bytearray() for _ in range(1 << _BUCKET_BITS)]
        self._recs = [bytearray() for _ in range(1 << _BUCKET_BITS)]
        self._packs: list[bytes] = []
        self._pack_numbers: dict[bytes, int] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, blob_id: object) -> bool:
        if not isinstance(blob_id, bytes) or len(blob_id) != ID_SIZE:
            return False
        with self._lock:
            return self._find(blob_id) >= 0

    def _pack_number(self, pack_id: bytes) -> int:
        n = self._pack_numbers.get(pack_id)
        if n is None:
            n = len(self._packs)
            self._packs.append(pack_id)
            self._pack_numbers[pack_id] = n
        return n

    def _find(self, blob_id: bytes) -> int:
        """Position of the blob in its bucket, or -1."""
        ids = self._ids[_bucket(blob_id)]
        pos = ids.find(blob_id)
        while pos >= 0 and pos % ID_SIZE:
            pos = ids.find(blob_id, pos + 1)
        return pos // ID_SIZE if pos >= 0 else -1

    def lookup(self, blob_id: bytes) -> BlobLocation | None:
        if len(blob_id) != ID_SIZE:
            return None
        with self._lock:
            i = self._find(blob_id)
            if i < 0:
                return None
            rec = self._recs[_bucket(blob_id)]
            pack_no, offset, length, raw_length, blob_type = _REC.unpack_from(rec, i * _REC.size)
            pack_id = self._packs[pack_no]
        return BlobLocation(pack_id, BlobType(blob_type), offset, length, raw_length)

    def add_pack(self, pack_id: bytes, entries: Iterable[PackEntry]) -> None:
        """Record the blobs of one stored pack. A blob already known keeps its location."""
        with self._lock:
            self._add(pack_id, entries)

    def add_many(self, packs: Iterable[tuple[bytes, list[PackEntry]]]) -> None:
        """Record the blobs of many stored packs (loading index files)."""
        with self._lock:
            for pack_id, entries in packs:
                self._add(pack_id, entries)

    def _add(self, pack_id: bytes, entries: Iterable[PackEntry]) -> None:
        pack_no = self._pack_number(pack_id)
        pack = _REC.pack
        for e in entries:
            if self._find(e.blob_id) >= 0:
                continue
            b = _bucket(e.blob_id)
            self._ids[b] += e.blob_id
            self._recs[b] += pack(pack_no, e.offset, e.length, e.raw_length, e.blob_type)
            self._count += 1

    def packs(self) -> list[bytes]:
        with self._lock:
            return list(self._packs)

    def items(self) -> Iterator[tuple[bytes, BlobLocation]]:
        """Every (blob id, location), bucket by bucket (a consistent copy per bucket)."""
        for b in range(1 << _BUCKET_BITS):
            with self._lock:
                ids, recs, packs = bytes(self._ids[b]), bytes(self._recs[b]), self._packs
            for i in range(len(ids) // ID_SIZE):
                pack_no, offset, length, raw_length, blob_type = _REC.unpack_from(
                    recs, i * _REC.size
                )
                yield (
                    ids[i * ID_SIZE : (i + 1) * ID_SIZE],
                    BlobLocation(packs[pack_no], BlobType(blob_type), offset, length, raw_length),
                )
