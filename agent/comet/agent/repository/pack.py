"""Pack files: sealed blobs back to back, then an encrypted trailer naming them.

``PackWriter`` assembles one pack in an unnamed temporary file (as restic's packer
does), hashing it as it grows, so a pack being filled costs no resident memory; its
bytes are read back only to be stored. ``PackReader`` reads a stored pack's trailer
(which is what rebuilding an index needs) and its blobs.
"""

from __future__ import annotations

import io
import struct
import tempfile
from typing import NamedTuple

from blake3 import blake3

from comet.agent.errors import IntegrityError, RepositoryError
from comet.agent.repository.crypto import Sealer
from comet.agent.repository.format import (
    MAGIC_PACK,
    MAGIC_PACK_TRAILER,
    NONCE_SIZE,
    TAG_SIZE,
    BlobType,
    check_header,
    header,
)
from comet.agent.storage.base import ObjectNotFoundError, Storage, StorageError, read_file

PACK_HEADER = header(MAGIC_PACK) + b"\0\0\0"
_ENTRY = struct.Struct("<32sBIII")
_COUNT = struct.Struct("<I")
_SPOOL_BUFFER = 256 * 1024  # sealed blobs gathered before one write to the spool file


class PackEntry(NamedTuple):
    """One blob of a pack, as listed in its trailer and in index files."""

    blob_id: bytes
    blob_type: BlobType
    offset: int
    length: int
    raw_length: int


def pack_key(pack_id: bytes) -> str:
    h = pack_id.hex()
    return f"data/{h[:2]}/{h}"


def encode_entries(entries: list[PackEntry]) -> bytes:
    return _COUNT.pack(len(entries)) + b"".join(
        _ENTRY.pack(e.blob_id, e.blob_type, e.offset, e.length, e.raw_length) for e in entries
    )


def decode_entries(body: bytes | memoryview, pos: int, what: str) -> tuple[list[PackEntry], int]:
    """Parse ``count ‖ entries`` at ``pos``; return them and the position after them."""
    try:
        (count,) = _COUNT.unpack_from(body, pos)
        pos += _COUNT.size
        end = pos + count * _ENTRY.size
        if end > len(body):
            raise IntegrityError(f"{what}: entry table is truncated")
        entries = []
        for blob_id, blob_type, offset, length, raw_length in _ENTRY.iter_unpack(body[pos:end]):
            entries.append(PackEntry(blob_id, BlobType(blob_type), offset, length, raw_length))
    except (struct.error, ValueError) as e:
        raise IntegrityError(f"{what}: malformed entry table ({e})") from e
    return entries, end


class PackWriter:
    """Collects sealed blobs into one pack, spooled to an unnamed temporary file (gone
    when closed, or when the process dies). Not thread-safe; the caller serializes.

    ``finish`` returns the whole pack; a pipeline that stores packs on other threads
    calls ``seal`` when the pack is full and ``read`` just before storing it, so only
    packs being stored are held in memory."""

    def __init__(self, spool_dir: str | None = None) -> None:
        # The file is opened by the first write past the header: making a writer that
        # stays empty (``dict.setdefault(key, PackWriter())``) costs no system call.
        self._spool_dir = spool_dir
        self._file: io.FileIO | None = None
        self._hash = blake3(PACK_HEADER)
        self._size = len(PACK_HEADER)
        # Small sealed blobs gather here and reach the file and the hash together: a
        # write and a hash update per blob cost more than the blob itself for a tree of
        # small files (and each write lets the GIL go to threads that hold it long).
        self._pending = bytearray()
        self.entries: list[PackEntry] = []

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self.entries)

    def _write(self, data: bytes | bytearray) -> None:
        if len(self._pending) + len(data) > _SPOOL_BUFFER:
            self._flush()
        if len(data) < _SPOOL_BUFFER:
            self._pending += data
        else:
            self._write_out(data)
        self._size += len(data)

    def _flush(self) -> None:
        if self._pending:
            self._write_out(self._pending)
            self._pending = bytearray()

    def _write_out(self, data: bytes | bytearray) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self._spool_dir, buffering=0)  # noqa: SIM115 (closed by read/close)
            self._file.write(PACK_HEADER)
        view = memoryview(data)
        while view:
            view = view[self._file.write(view) or 0 :]
        view.release()
        self._hash.update(data)

    def add(
        self, blob_id: bytes, blob_type: BlobType, stored: bytes | bytearray, raw_length: int
    ) -> None:
        self.entries.append(PackEntry(blob_id, blob_type, self._size, len(stored), raw_length))
        self._write(stored)

    def seal(self, sealer: Sealer) -> bytes:
        """Append the trailer; return the pack id (the BLAKE3 hash of its bytes)."""
        trailer_plain = header(MAGIC_PACK_TRAILER) + encode_entries(self.entries)
        # The AAD of the trailer is the pack header (see docs/format.md): seal it that way.
        trailer = sealer.seal(PACK_HEADER, trailer_plain)[len(PACK_HEADER) :]
        self._write(trailer)
        self._write(_COUNT.pack(len(trailer)))
        self._flush()
        return bytes(self._hash.digest())

    def read(self) -> bytes:
        """The sealed pack's bytes (one buffer; the spool file is then closed)."""
        try:
            data = read_file(self.fileno(), self._size)
        except StorageError as e:
            raise RepositoryError("a pack's temporary file came up short") from e
        self.close()
        return data

    def fileno(self) -> int:
        """The spool file holding the sealed pack's ``size`` bytes from offset 0 (valid
        until ``close``): a storage streams it from there (``put_file``)."""
        assert self._file is not None  # sealed: the trailer was written
        return self._file.fileno()

    def finish(self, sealer: Sealer) -> tuple[bytes, bytes]:
        """Append the trailer; return ``(pack id, pack bytes)``."""
        pack_id = self.seal(sealer)
        return pack_id, self.read()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class PackReader:
    """Reads a stored pack's trailer and blobs through a Storage."""

    def __init__(self, storage: Storage, sealer: Sealer) -> None:
        self._storage = storage
        self._sealer = sealer

    def read_entries(self, pack_id: bytes) -> list[PackEntry]:
        """Return the blobs listed in the pack's trailer (IntegrityError if damaged)."""
        key = pack_key(pack_id)
        what = f"pack {pack_id.hex()}"
        try:
            size = self._storage.stat(key).size
            min_size = len(PACK_HEADER) + NONCE_SIZE + TAG_SIZE + _COUNT.size
            if size < min_size:
                raise IntegrityError(f"{what} is truncated ({size} bytes)")
            head = self._storage.get(key, 0, len(PACK_HEADER))
            check_header(head, MAGIC_PACK, what)
            (tlen,) = _COUNT.unpack(self._storage.get(key, size - _COUNT.size, _COUNT.size))
            if tlen + len(PACK_HEADER) + _COUNT.size > size:
                raise IntegrityError(f"{what} is truncated (trailer length {tlen})")
            trailer = self._storage.get(key, size - _COUNT.size - tlen, tlen)
        except ObjectNotFoundError as e:
            raise RepositoryError(f"{what} is missing from storage") from e
        plain = self._sealer.open(len(PACK_HEADER), PACK_HEADER + trailer, f"{what} trailer")
        check_header(plain, MAGIC_PACK_TRAILER, f"{what} trailer")
        entries, _ = decode_entries(plain, 5, f"{what} trailer")
        return entries
