"""What the index files and the storage say about packs, as maintenance needs it.

Unlike the in-memory ``BlobIndex`` (one location per blob), a ``PackTable`` keeps every
pack's full entry list, so duplicates and unused blobs are visible. The lists are kept
on disk as the index files' raw entry tables and decoded when a pack is looked at, so a
10-million-blob vault's table takes ~40 MB of memory rather than gigabytes of tuples.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from comet.agent.errors import IntegrityError, RepositoryError
from comet.agent.repository.crypto import Sealer, object_id
from comet.agent.repository.format import (
    ID_SIZE,
    MAGIC_PACK,
    MAGIC_PACK_TRAILER,
    NONCE_SIZE,
    TAG_SIZE,
    check_header,
)
from comet.agent.repository.index import read_index_file
from comet.agent.repository.pack import PACK_HEADER, PackEntry, decode_entries
from comet.agent.repository.repository import Repository
from comet.agent.storage.base import ObjectInfo, ObjectNotFoundError, Storage

_PACK_KEY = re.compile(r"^data/([0-9a-f]{2})/([0-9a-f]{64})$")
_ENTRY_SIZE = ID_SIZE + 1 + 4 + 4 + 4  # docs/format.md, "Packs": id, type, offset, length, raw
_U32_SIZE = 4


class PackEntries(Mapping[bytes, list[PackEntry]]):
    """Pack id -> its entries (first listing wins). The raw entry tables go to an
    unlinked temporary file (``TMPDIR``), read back and decoded on each access: memory
    holds only pack id -> position, ~4 bytes a blob instead of 45."""

    def __init__(self) -> None:
        self._where: dict[bytes, int] = {}  # position << 32 | length in the file
        # Closed with the table (its finalizer): it lives as long as the table does.
        self._file = tempfile.TemporaryFile(prefix="comet-packs-")  # noqa: SIM115
        self._size = 0

    def add(self, pack_id: bytes, table: bytes | memoryview) -> None:
        """Record a pack's ``count || entries`` table unless the pack is listed already."""
        if pack_id in self._where:
            return
        fd = self._file.fileno()
        done = 0
        while done < len(table):
            done += os.pwrite(fd, table[done:], self._size + done)
        self._where[pack_id] = self._size << 32 | len(table)
        self._size += len(table)

    def __getitem__(self, pack_id: bytes) -> list[PackEntry]:
        where = self._where[pack_id]
        table = os.pread(self._file.fileno(), where & 0xFFFFFFFF, where >> 32)
        entries, _ = decode_entries(table, 0, f"index entries of pack {pack_id.hex()}")
        return entries

    def __contains__(self, pack_id: object) -> bool:
        return pack_id in self._where

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


@dataclass
class PackTable:
    """Every pack named by the index files, with its entries (first listing wins)."""

    packs: PackEntries = field(default_factory=PackEntries)
    index_keys: list[str] = field(default_factory=list)
    index_bytes: int = 0
    damaged: list[tuple[str, str]] = field(default_factory=list)  # (index key, message)


def load_pack_table(repo: Repository, *, tolerant: bool = False) -> PackTable:
    """Read every index file. A damaged one raises, or with ``tolerant`` is recorded in
    ``damaged`` (and its packs are not listed)."""
    table = PackTable()
    for obj in repo.storage.list("index/"):
        try:
            data = repo.storage.get(obj.key)
        except ObjectNotFoundError:
            continue
        try:
            if object_id(data).hex() != obj.key.rsplit("/", 1)[-1]:
                raise IntegrityError(f"{obj.key} does not match its name (damaged object)")
            packs = read_index_file(repo.sealer, data, obj.key)
        except RepositoryError as e:
            if not tolerant:
                raise
            table.damaged.append((obj.key, str(e)))
            continue
        table.index_keys.append(obj.key)
        table.index_bytes += len(data)
        for pack_id, entries in packs:
            table.packs.add(pack_id, entries)
        del data, packs  # not held while the next file is read
    return table


def stored_packs(storage: Storage) -> dict[bytes, int]:
    """Pack id → size of every pack object in storage. Objects under ``data/`` whose
    names are not pack keys are ignored (they are no pack)."""
    return {pack_id: obj.size for pack_id, obj in stored_pack_objects(storage).items()}


def stored_pack_objects(storage: Storage) -> dict[bytes, ObjectInfo]:
    """Pack id → listing entry (size, storage time) of every pack object in storage."""
    out = {}
    for obj in storage.list("data/"):
        m = _PACK_KEY.match(obj.key)
        if m and m.group(2).startswith(m.group(1)):
            out[bytes.fromhex(m.group(2))] = obj
    return out


def expected_pack_size(entries: list[PackEntry]) -> int:
    """The exact size of a pack holding ``entries`` (its complete trailer listing)."""
    end = max((e.offset + e.length for e in entries), default=len(PACK_HEADER))
    trailer_plain = 5 + _U32_SIZE + _ENTRY_SIZE * len(entries)
    return end + NONCE_SIZE + trailer_plain + TAG_SIZE + _U32_SIZE


def parse_pack(sealer: Sealer, pack_id: bytes, data: bytes) -> list[PackEntry]:
    """Read the trailer of a whole pack held in memory. IntegrityError if damaged."""
    what = f"pack {pack_id.hex()}"
    if len(data) < len(PACK_HEADER) + NONCE_SIZE + TAG_SIZE + _U32_SIZE:
        raise IntegrityError(f"{what} is truncated ({len(data)} bytes)")
    check_header(data, MAGIC_PACK, what)
    tlen = int.from_bytes(data[-_U32_SIZE:], "little")
    start = len(data) - _U32_SIZE - tlen
    if start < len(PACK_HEADER):
        raise IntegrityError(f"{what} is truncated (trailer length {tlen})")
    plain = sealer.open(
        len(PACK_HEADER), PACK_HEADER + data[start : len(data) - _U32_SIZE], f"{what} trailer"
    )
    check_header(plain, MAGIC_PACK_TRAILER, f"{what} trailer")
    entries, _ = decode_entries(plain, 5, f"{what} trailer")
    for e in entries:
        if e.offset < len(PACK_HEADER) or e.offset + e.length > start:
            raise IntegrityError(f"{what} trailer: blob {e.blob_id.hex()} lies outside the pack")
    return entries
