"""The blob index: where each blob lives (pack, offset, length).

Memory is what limits how big a vault an agent can open, so the index keeps in memory
only what a lookup needs to find a candidate: per blob, the first 8 bytes of its id and
a 4-byte ordinal, 12 bytes in packed ``bytearray`` buckets keyed by the leading bits of
the id (the bucket count doubles as the index grows, so a bucket stays a kilobyte or two
and one C-speed ``bytes.find`` scans it). Everything else, the full 32-byte id and
the location record, is appended to an unlinked temporary *spill file* at
``ordinal * 49`` and read back when the prefix matches, which also confirms the full id:
a prefix collision is never taken for the blob. Records are read 8 KiB at a time and the
last 64 such blocks kept (512 KiB): lookups mostly come in the order the blobs were
written (a re-run walks the files its parent walked), so most are answered without a
system call. That is ~13-15
bytes of resident memory per blob (plus 32 per pack and ~20 KB fixed), where restic and
Borg hold the whole 32-byte id and location in memory. The spill file lives in the
system temporary directory (``TMPDIR``) and goes away with the index; the kernel's page
cache, not the agent's heap, holds its hot parts.

Index *files* (``index/<id>``) are serialized here too; their format is unchanged.
"""

from __future__ import annotations

import os
import struct
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, NamedTuple

from comet.agent.errors import IntegrityError
from comet.agent.repository.crypto import Sealer
from comet.agent.repository.format import ID_SIZE, MAGIC_INDEX, BlobType, check_header, header
from comet.agent.repository.pack import PackEntry, decode_entries, encode_entries

_U32 = struct.Struct("<I")
_U64 = struct.Struct(">Q")
# Spill record: full id, pack number, offset, length, raw length, blob type.
_SPILL = struct.Struct("<32sIIIIB")
_ENTRY = struct.Struct("<32sBIII")  # an entry of an index file or pack trailer
_BLOB_TYPES = frozenset(int(t) for t in BlobType)
_KEY = 8  # bytes of the id kept in memory
_MIN_BITS = 8  # 256 buckets to start with
_MAX_FILL = 256  # entries per bucket on average before the bucket count doubles
_FLUSH = 1 << 20  # bytes of spill records buffered before they are written
_BLOCK_RECORDS = 8192 // _SPILL.size  # spill records read at once
_BLOCKS_KEPT = 64


class BlobLocation(NamedTuple):
    pack_id: bytes
    blob_type: BlobType
    offset: int
    length: int
    raw_length: int


class BlobIndex:
    """Maps blob ids to locations. Thread-safe."""

    def __init__(self, spill_dir: str | None = None, *, only: BlobType | None = None) -> None:
        # ``only``: blobs of other types are left out as they are added (a listing
        # reads trees only, and in a vault of many small files nearly every blob is data).
        self.only = only
        self._lock = threading.Lock()
        self._bits = _MIN_BITS
        self._keys = [bytearray() for _ in range(1 << _MIN_BITS)]  # 8-byte id prefixes
        self._ords = [bytearray() for _ in range(1 << _MIN_BITS)]  # u32 spill ordinals
        self._packs = bytearray()  # 32-byte pack ids, by pack number
        self._count = 0
        self._spill_dir = spill_dir
        self._spill: IO[bytes] | None = None
        self._flushed = 0  # records written to the spill file
        self._tail = bytearray()  # records not yet written
        self._blocks: OrderedDict[int, bytes] = OrderedDict()  # block number -> records

    def __len__(self) -> int:
        return self._count

    def __contains__(self, blob_id: object) -> bool:
        if not isinstance(blob_id, bytes) or len(blob_id) != ID_SIZE:
            return False
        with self._lock:
            return self._find(blob_id) is not None

    # --- the spill file ---------------------------------------------------------------

    def _record(self, ordinal: int) -> bytes:
        size = _SPILL.size
        if ordinal >= self._flushed:
            start = (ordinal - self._flushed) * size
            return bytes(self._tail[start : start + size])
        block_no, i = divmod(ordinal, _BLOCK_RECORDS)
        start = i * size
        block = self._blocks.get(block_no)
        if block is None or len(block) < start + size:  # a last block read before a flush
            assert self._spill is not None
            block_size = _BLOCK_RECORDS * size
            block = os.pread(self._spill.fileno(), block_size, block_no * block_size)
            self._blocks[block_no] = block
            if len(self._blocks) > _BLOCKS_KEPT:
                self._blocks.popitem(last=False)
        return block[start : start + size]

    def _flush(self) -> None:
        if not self._tail:
            return
        if self._spill is None:
            # Closed with the index (its finalizer): it lives as long as the index does.
            self._spill = tempfile.TemporaryFile(prefix="comet-index-", dir=self._spill_dir)  # noqa: SIM115
        fd = self._spill.fileno()
        view = memoryview(self._tail)
        done = 0
        pos = self._flushed * _SPILL.size
        while done < len(view):
            done += os.pwrite(fd, view[done:], pos + done)
        view.release()
        self._flushed += len(self._tail) // _SPILL.size
        self._tail = bytearray()

    # --- buckets ------------------------------------------------------------------------

    def _find(self, blob_id: bytes) -> tuple[int, bytes] | None:
        """The blob's ordinal and spill record, or None."""
        prefix = blob_id[:_KEY]
        b = _U64.unpack(prefix)[0] >> (64 - self._bits)
        keys = self._keys[b]
        pos = keys.find(prefix)
        while pos >= 0:
            if not pos % _KEY:
                (ordinal,) = _U32.unpack_from(self._ords[b], pos // _KEY * 4)
                rec = self._record(ordinal)
                if rec[:ID_SIZE] == blob_id:
                    return ordinal, rec
            pos = keys.find(prefix, pos + 1)
        return None

    def _grow(self) -> None:
        """Double the bucket count: bucket b splits into 2b and 2b+1 by the next bit.
        Each old bucket is freed as soon as it is split, so growing never holds two
        copies of the index."""
        bits = self._bits + 1
        shift = 64 - bits
        old_keys, old_ords = self._keys, self._ords
        keys: list[bytearray] = []
        ords: list[bytearray] = []
        unpack = _U64.unpack_from
        for b in range(len(old_keys)):
            bucket_keys, bucket_ords = old_keys[b], old_ords[b]
            old_keys[b] = old_ords[b] = bytearray()
            parts = ((bytearray(), bytearray()), (bytearray(), bytearray()))
            for i in range(len(bucket_keys) // _KEY):
                k, o = parts[(unpack(bucket_keys, i * _KEY)[0] >> shift) & 1]
                k += bucket_keys[i * _KEY : (i + 1) * _KEY]
                o += bucket_ords[i * 4 : i * 4 + 4]
            del bucket_keys, bucket_ords
            for k, o in parts:
                keys.append(k)
                ords.append(o)
        self._keys, self._ords, self._bits = keys, ords, bits

    # --- the public API -----------------------------------------------------------------

    def lookup(self, blob_id: bytes) -> BlobLocation | None:
        if len(blob_id) != ID_SIZE:
            return None
        with self._lock:
            found = self._find(blob_id)
            if found is None:
                return None
            _, pack_no, offset, length, raw_length, blob_type = _SPILL.unpack(found[1])
            pack_id = bytes(self._packs[pack_no * ID_SIZE : (pack_no + 1) * ID_SIZE])
        return BlobLocation(pack_id, BlobType(blob_type), offset, length, raw_length)

    def pack_of(self, blob_id: bytes) -> bytes | None:
        """The id of the pack holding the blob, or None if it is not indexed: what a
        backup asks of every blob it may skip, without building its whole location
        (an unchanged re-run asks once per file)."""
        if len(blob_id) != ID_SIZE:
            return None
        with self._lock:
            found = self._find(blob_id)
            if found is None:
                return None
            (pack_no,) = _U32.unpack_from(found[1], ID_SIZE)
            return bytes(self._packs[pack_no * ID_SIZE : (pack_no + 1) * ID_SIZE])

    def add_pack(self, pack_id: bytes, entries: Iterable[PackEntry]) -> None:
        """Record the blobs of one stored pack. A blob already known keeps its location."""
        with self._lock:
            self._add(pack_id, entries)
            self._flush()

    def add_many(self, packs: Iterable[tuple[bytes, list[PackEntry]]]) -> None:
        """Record the blobs of many stored packs (loading index files)."""
        with self._lock:
            for pack_id, entries in packs:
                self._add(pack_id, entries)
            self._flush()

    def add_tables(self, packs: Iterable[tuple[bytes, bytes | memoryview]]) -> None:
        """Record the blobs of many stored packs given as raw entry tables (what
        ``read_index_file`` returns): loading a big index without a Python object per
        entry."""
        with self._lock:
            for pack_id, table in packs:
                self._add(pack_id, _ENTRY.iter_unpack(memoryview(table)[_U32.size :]))
            self._flush()

    def _add(self, pack_id: bytes, entries: Iterable[tuple[bytes, int, int, int, int]]) -> None:
        if len(pack_id) != ID_SIZE:
            raise ValueError("a pack id is 32 bytes")
        if self.only is not None:
            only = self.only
            entries = (e for e in entries if e[1] == only)
        pack_no = len(self._packs) // ID_SIZE
        self._packs += pack_id
        spill = _SPILL.pack
        u32 = _U32.pack
        for blob_id, blob_type, offset, length, raw_length in entries:
            if self._find(blob_id) is not None:
                continue
            prefix = blob_id[:_KEY]
            b = _U64.unpack(prefix)[0] >> (64 - self._bits)
            self._keys[b] += prefix
            self._ords[b] += u32(self._count)
            self._tail += spill(blob_id, pack_no, offset, length, raw_length, blob_type)
            self._count += 1
            if len(self._tail) >= _FLUSH:
                self._flush()
            if self._count > _MAX_FILL << self._bits:
                self._grow()

    def packs(self) -> list[bytes]:
        """Every pack recorded, each once, in the order first recorded."""
        with self._lock:
            raw = bytes(self._packs)
        ids = (raw[i : i + ID_SIZE] for i in range(0, len(raw), ID_SIZE))
        return list(dict.fromkeys(ids))

    def items(self) -> Iterator[tuple[bytes, BlobLocation]]:
        """Every (blob id, location), in the order they were added (the entries present
        when iteration reaches them)."""
        size = _SPILL.size
        step = _FLUSH // size
        ordinal = 0
        while True:
            with self._lock:
                count = min(step, self._count - ordinal)
                if count <= 0:
                    return
                self._flush()
                assert self._spill is not None
                chunk = os.pread(self._spill.fileno(), count * size, ordinal * size)
                packs = bytes(self._packs)
            for blob_id, pack_no, offset, length, raw_length, blob_type in _SPILL.iter_unpack(
                chunk
            ):
                pack_id = packs[pack_no * ID_SIZE : (pack_no + 1) * ID_SIZE]
                yield (
                    blob_id,
                    BlobLocation(pack_id, BlobType(blob_type), offset, length, raw_length),
                )
            ordinal += count

    def ordinal(self, blob_id: bytes) -> int | None:
        """A dense number in ``range(len(self))`` for an indexed blob, stable for this
        index's life, or None: bitmaps over the index use it."""
        if len(blob_id) != ID_SIZE:
            return None
        with self._lock:
            found = self._find(blob_id)
        return None if found is None else found[0]


def encode_index_file(
    sealer: Sealer, packs: Sequence[tuple[bytes, list[PackEntry] | bytes]]
) -> bytes:
    """Serialize and seal an index file listing the given packs' blobs, each given as
    its entries or as their table already encoded (``encode_entries``)."""
    parts = [_U32.pack(len(packs))]
    for pack_id, entries in packs:
        parts.append(pack_id)
        parts.append(entries if isinstance(entries, bytes) else encode_entries(entries))
    parts.append(_U32.pack(0))  # superseded index ids: none in version 1 writers
    return sealer.seal(header(MAGIC_INDEX), b"".join(parts))


def read_index_file(sealer: Sealer, data: bytes, what: str) -> list[tuple[bytes, memoryview]]:
    """Open an index file; return its (pack id, entry table) list, each table the
    ``count ‖ entries`` of docs/format.md ("Packs"), checked for length and blob types
    but not decoded (``decode_entries`` does that). The tables are views of the
    decrypted file, not copies: opening a vault holds at most the file and its
    plaintext at once."""
    check_header(data, MAGIC_INDEX, what)
    body = sealer.open(5, data, what)
    view = memoryview(body)
    try:
        (count,) = _U32.unpack_from(body, 0)
        pos = _U32.size
        packs = []
        for _ in range(count):
            pack_id = body[pos : pos + ID_SIZE]
            if len(pack_id) != ID_SIZE:
                raise IntegrityError(f"{what} is truncated")
            start = pos + ID_SIZE
            (entries,) = _U32.unpack_from(body, start)
            pos = start + _U32.size + entries * _ENTRY.size
            if pos > len(body):
                raise IntegrityError(f"{what}: entry table is truncated")
            table = view[start:pos]
            # The blob type is the byte after each 32-byte id.
            if not set(table[_U32.size + ID_SIZE :: _ENTRY.size]) <= _BLOB_TYPES:
                raise IntegrityError(f"{what}: malformed entry table (unknown blob type)")
            packs.append((pack_id, table))
    except struct.error as e:
        raise IntegrityError(f"{what} is malformed ({e})") from e
    return packs


def decode_index_file(
    sealer: Sealer, data: bytes, what: str
) -> list[tuple[bytes, list[PackEntry]]]:
    """Open an index file; return its (pack id, entries) list."""
    return [
        (pack_id, decode_entries(table, 0, what)[0])
        for pack_id, table in read_index_file(sealer, data, what)
    ]
