"""The blob index: where each blob lives (pack, offset, length).

In memory the index is 4096 buckets (by the first 12 bits of the blob id), each a pair
of packed byte arrays: 32-byte ids and 17-byte records. A lookup is one C-speed
``bytes.find`` in a bucket; adding appends. That costs ~52 bytes per blob (plus ~75 per
pack and ~0.5 MB fixed), instead of the ~200 a dict of tuples would. Index *files*
(``index/<id>``) are serialized here too.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from comet.agent.errors import IntegrityError
from comet.agent.repository.crypto import Sealer
from comet.agent.repository.format import ID_SIZE, MAGIC_INDEX, BlobType, check_header, header
from comet.agent.repository.pack import PackEntry, decode_entries, encode_entries

_REC = struct.Struct("<IIIIB")  # pack number, offset, length, raw length, blob type
_U32 = struct.Struct("<I")
_BUCKET_BITS = 12


class BlobLocation(NamedTuple):
    pack_id: bytes
    blob_type: BlobType
    offset: int
    length: int
    raw_length: int


def _bucket(blob_id: bytes) -> int:
    return (blob_id[0] << 4) | (blob_id[1] >> 4)


class BlobIndex:
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


def encode_index_file(sealer: Sealer, packs: list[tuple[bytes, list[PackEntry]]]) -> bytes:
    """Serialize and seal an index file listing the given packs' blobs."""
    parts = [_U32.pack(len(packs))]
    for pack_id, entries in packs:
        parts.append(pack_id)
        parts.append(encode_entries(entries))
    parts.append(_U32.pack(0))  # superseded index ids: none in version 1 writers
    return sealer.seal(header(MAGIC_INDEX), b"".join(parts))


def decode_index_file(
    sealer: Sealer, data: bytes, what: str
) -> list[tuple[bytes, list[PackEntry]]]:
    """Open an index file; return its (pack id, entries) list."""
    check_header(data, MAGIC_INDEX, what)
    body = sealer.open(5, data, what)
    try:
        (count,) = _U32.unpack_from(body, 0)
        pos = _U32.size
        packs = []
        for _ in range(count):
            pack_id = body[pos : pos + ID_SIZE]
            if len(pack_id) != ID_SIZE:
                raise IntegrityError(f"{what} is truncated")
            entries, pos = decode_entries(body, pos + ID_SIZE, what)
            packs.append((pack_id, entries))
    except struct.error as e:
        raise IntegrityError(f"{what} is malformed ({e})") from e
    return packs
