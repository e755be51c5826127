"""``TarTarget``: stream a restore as a POSIX 1003.1-2001 (pax) tar archive.

Headers are built with ``tarfile.TarInfo`` and written straight to the output, followed
by the file's content as the engine hands it over: nothing is spooled. pax records keep
long and non-ASCII names, nanosecond mtimes, large ids and ``SCHILY.xattr`` attributes;
names that are not valid UTF-8 keep their bytes through ``hdrcharset=BINARY``.
Optionally gzip- or zstd-compressed. Also the stream format of program-archive and
SquashFS restores.
"""

from __future__ import annotations

import enum
import gzip
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Protocol, cast

import zstandard

from comet.agent.errors import ArchiveWriteError, os_error_sentence
from comet.agent.repository.tree import Node, NodeType
from comet.agent.restore.names import member_name
from comet.agent.restore.target import RestorePath, TargetRefusedError

_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_NS = 1_000_000_000


class Compression(enum.StrEnum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


class ByteSink(Protocol):
    """Where an archive stream goes: a binary file, a pipe, any object with these two."""

    def write(self, data: bytes, /) -> object: ...

    def flush(self) -> object: ...


def _open_stream(
    out: ByteSink, compression: Compression, level: int | None
) -> tuple[Callable[[bytes], object], Callable[[], object]]:
    """Return ``(write, finish)``; ``finish`` ends the compressed stream but leaves
    ``out`` open (the caller owns it)."""
    if compression == Compression.GZIP:
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=level or 6)
        return gz.write, gz.close
    if compression == Compression.ZSTD:
        # stream_writer only calls write and flush, whatever its annotation says.
        writer = zstandard.ZstdCompressor(level=level or 3, threads=-1).stream_writer(
            cast("IO[bytes]", out), closefd=False
        )
        return writer.write, writer.close
    return out.write, out.flush


def _pax_time(ns: int) -> str:
    sign = "-" if ns < 0 else ""
    sec, frac = divmod(abs(ns), _NS)
    return f"{sign}{sec}.{frac:09d}".rstrip("0").rstrip(".")


def tar_header(path: RestorePath, node: Node, kind: bytes, *, size: int = 0) -> TarInfo:
    """A TarInfo for ``node`` at ``path`` with all of its metadata as pax records."""
    info = tarfile.TarInfo(member_name(path))
    info.type = kind
    info.size = size
    info.mode = node.mode & 0o7777
    info.uid, info.gid = node.uid, node.gid
    info.uname, info.gname = node.user, node.group
    info.mtime = node.mtime_ns // _NS
    pax: dict[str, str] = {}
    if node.mtime_ns % _NS:
        pax["mtime"] = _pax_time(node.mtime_ns)
    for name, value in node.xattrs:
        # A pax keyword ends at "=": such a name cannot be stored (no real system has one).
        if "=" not in name and "\0" not in name and "\n" not in name:
            pax[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    info.pax_headers = pax
    return info


TarInfo = tarfile.TarInfo


@dataclass
class _Member:
    handle: int
    size: int
    written: int = 0


class TarTarget:
    """Writes a pax tar stream to ``out`` (not closed: the caller owns it). Members are
    relative names (``home/u/file``); hard links become link entries."""

    random_access = False
    hard_links = True

    def __init__(
        self,
        out: ByteSink,
        *,
        compression: Compression | str = Compression.NONE,
        level: int | None = None,
    ) -> None:
        self._write, self._flush = _open_stream(out, Compression(compression), level)
        self._offset = 0
        self._member: _Member | None = None
        self._next = 1
        self._broken = False
        self._finished = False

    def _emit(self, data: bytes) -> None:
        if self._broken:
            raise ArchiveWriteError("the archive stream is incomplete after an earlier error")
        try:
            self._write(data)
        except OSError as e:
            self._broken = True
            raise ArchiveWriteError(
                f"cannot write the archive stream: {os_error_sentence(e)}"
            ) from e
        self._offset += len(data)

    def _pad(self) -> None:
        rest = -self._offset % _BLOCK
        if rest:
            self._emit(bytes(rest))

    def _entry(self, info: TarInfo) -> None:
        if self._member is not None:
            raise ArchiveWriteError("a tar entry was started inside an unfinished file")
        self._emit(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    # --- RestoreTarget ---------------------------------------------------------------

    def directory(self, path: RestorePath, node: Node | None) -> bool:
        if path and node is not None:
            self._entry(tar_header(path, node, tarfile.DIRTYPE))
        return True

    def finish_directory(self, path: RestorePath, node: Node) -> None:
        pass  # the directory's metadata went into its header

    def begin_file(self, path: RestorePath, node: Node, size: int) -> int | None:
        self._entry(tar_header(path, node, tarfile.REGTYPE, size=size))
        self._member = _Member(self._next, size)
        self._next += 1
        return self._member.handle

    def write(self, handle: int, offset: int, data: bytes) -> None:
        m = self._member
        if m is None or m.handle != handle or offset != m.written:
            raise ArchiveWriteError("tar content arrived out of order")
        if m.written + len(data) > m.size:
            raise ArchiveWriteError("tar content is longer than its header says")
        self._emit(data)
        m.written += len(data)

    def end_file(self, handle: int) -> None:
        m = self._member
        if m is None or m.handle != handle or m.written != m.size:
            raise ArchiveWriteError("tar content is shorter than its header says")
        self._member = None
        self._pad()

    def abort_file(self, handle: int) -> None:
        # The header is out: the stream cannot be repaired, so the archive is never
        # completed (finish refuses) and a reader sees it end early.
        if self._member is not None:
            self._broken = True
            self._member = None

    def symlink(self, path: RestorePath, node: Node) -> None:
        if not node.target or "\0" in node.target:
            raise TargetRefusedError("symlink without a valid target")
        info = tar_header(path, node, tarfile.SYMTYPE)
        info.linkname = node.target
        self._entry(info)

    def hardlink(self, path: RestorePath, node: Node, existing: RestorePath) -> None:
        info = tar_header(path, node, tarfile.LNKTYPE)
        info.linkname = member_name(existing)
        self._entry(info)

    def special(self, path: RestorePath, node: Node) -> None:
        kinds = {
            NodeType.FIFO: tarfile.FIFOTYPE,
            NodeType.CHARDEV: tarfile.CHRTYPE,
            NodeType.BLOCKDEV: tarfile.BLKTYPE,
        }
        kind = kinds.get(node.type)
        if kind is None:
            raise TargetRefusedError(f"{node.type} nodes cannot be stored in a tar archive")
        info = tar_header(path, node, kind)
        info.devmajor, info.devminor = node.rdev_major, node.rdev_minor
        self._entry(info)

    def finish(self) -> None:
        """Write the end-of-archive blocks, pad to a full record, end the compression."""
        if self._member is not None:
            raise ArchiveWriteError("the archive ended inside an unfinished file")
        self._emit(bytes(2 * _BLOCK))
        rest = -self._offset % _RECORD
        if rest:
            self._emit(bytes(rest))
        try:
            self._flush()
        except OSError as e:
            raise ArchiveWriteError(
                f"cannot write the archive stream: {os_error_sentence(e)}"
            ) from e
        self._finished = True

    def close(self) -> None:
        self._member = None
