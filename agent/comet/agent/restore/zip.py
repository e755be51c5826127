"""``ZipTarget``: stream a restore as a zip archive.

Written with ``zipfile`` on a stream that need not be seekable (sizes and CRCs then
follow each entry in a data descriptor). Entries whose size needs it use zip64, and so
does the central directory past 65535 entries. Names are UTF-8; a name that is not
valid UTF-8 cannot be stored and is refused with a warning. Unix modes (and the symlink
type) go into the external attributes, mtimes into the DOS field and the extended
timestamp extra field. Zip has no hard links: each linked name is stored in full.

Each entry's compression is picked from its first chunk of content: data that deflate
cannot shrink is stored, everything else is deflated (level 1 by default, because a
restore is usually waiting on it and zero-filled sparse ranges cost little there).
"""

from __future__ import annotations

import stat
import struct
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, cast

from comet.agent.errors import ArchiveWriteError, os_error_sentence
from comet.agent.repository.tree import Node, NodeType
from comet.agent.restore.names import member_name
from comet.agent.restore.tar import ByteSink
from comet.agent.restore.target import RestorePath, TargetRefusedError

_UNIX = 3  # "made by" system: the external attributes hold st_mode
_EXTENDED_TIME = 0x5455
_SAMPLE = 256 << 10
_NS = 1_000_000_000
_DOS_FIRST = 315_619_200  # 1980-01-02, a day of margin for any time zone
_DOS_LAST = 4_354_646_400  # 2107-12-30


def _name(path: RestorePath, *, directory: bool = False) -> str:
    name = member_name(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise TargetRefusedError("the name is not valid UTF-8, which zip requires") from None
    return name + "/" if directory else name


def _entry(name: str, node: Node, kind: int) -> zipfile.ZipInfo:
    seconds = node.mtime_ns // _NS
    # DOS dates cover 1980 to 2107; the extended timestamp below keeps the exact second.
    local = time.localtime(min(max(seconds, _DOS_FIRST), _DOS_LAST))
    info = zipfile.ZipInfo(name, date_time=local[:6])
    info.create_system = _UNIX
    info.external_attr = (kind | (node.mode & 0o7777)) << 16
    if kind == stat.S_IFDIR:
        info.external_attr |= 0x10  # the MS-DOS directory bit
    if -(2**31) <= seconds < 2**31:
        info.extra = struct.pack("<HHBi", _EXTENDED_TIME, 5, 1, seconds)
    return info


def _set_level(info: zipfile.ZipInfo, level: int) -> None:
    # Before Python 3.13 a per-entry level can only be set through this private slot.
    if sys.version_info >= (3, 13):
        info.compress_level = level
    else:
        attr = "_compresslevel"
        setattr(info, attr, level)


@dataclass
class _Pending:
    handle: int
    info: zipfile.ZipInfo
    size: int
    written: int = 0
    stream: IO[bytes] | None = None


class ZipTarget:
    """Writes a zip archive to ``out`` (not closed: the caller owns it)."""

    random_access = False
    hard_links = False

    def __init__(self, out: ByteSink, *, level: int = 1) -> None:
        self._level = level
        try:
            # zipfile only writes, flushes and (if it can) tells on a stream it creates.
            self._zip = zipfile.ZipFile(cast("IO[bytes]", out), mode="w", allowZip64=True)
        except OSError as e:
            raise ArchiveWriteError(f"cannot write the zip archive: {os_error_sentence(e)}") from e
        self._file: _Pending | None = None
        self._next = 1
        self._broken = False
        self._finished = False

    def _check(self) -> None:
        if self._broken:
            raise ArchiveWriteError("the zip stream is incomplete after an earlier error")
        if self._file is not None:
            raise ArchiveWriteError("a zip entry was started inside an unfinished file")

    def _put(self, info: zipfile.ZipInfo, data: bytes) -> None:
        self._check()
        info.compress_type = zipfile.ZIP_STORED
        try:
            self._zip.writestr(info, data)
        except OSError as e:
            self._broken = True
            raise ArchiveWriteError(f"cannot write the zip archive: {os_error_sentence(e)}") from e

    # --- RestoreTarget ---------------------------------------------------------------

    def directory(self, path: RestorePath, node: Node | None) -> bool:
        if path and node is not None:
            self._put(_entry(_name(path, directory=True), node, stat.S_IFDIR), b"")
        return True

    def finish_directory(self, path: RestorePath, node: Node) -> None:
        pass

    def begin_file(self, path: RestorePath, node: Node, size: int) -> int | None:
        self._check()
        info = _entry(_name(path), node, stat.S_IFREG)
        info.file_size = size  # decides zip64 before any data is written
        self._file = _Pending(self._next, info, size)
        self._next += 1
        return self._file.handle

    def _open(self, f: _Pending, first: bytes) -> IO[bytes]:
        sample = first[:_SAMPLE]
        if sample and len(zlib.compress(sample, 1)) >= len(sample) * 0.97:
            f.info.compress_type = zipfile.ZIP_STORED
        else:
            f.info.compress_type = zipfile.ZIP_DEFLATED
            _set_level(f.info, self._level)
        return self._zip.open(f.info, mode="w")

    def write(self, handle: int, offset: int, data: bytes) -> None:
        f = self._file
        if f is None or f.handle != handle or offset != f.written:
            raise ArchiveWriteError("zip content arrived out of order")
        if f.written + len(data) > f.size:
            raise ArchiveWriteError("zip content is longer than announced")
        try:
            if f.stream is None:
                f.stream = self._open(f, data)
            f.stream.write(data)
        except OSError as e:
            self._broken = True
            raise ArchiveWriteError(f"cannot write the zip archive: {os_error_sentence(e)}") from e
        f.written += len(data)

    def end_file(self, handle: int) -> None:
        f = self._file
        if f is None or f.handle != handle or f.written != f.size:
            raise ArchiveWriteError("zip content is shorter than announced")
        try:
            if f.stream is None:
                f.stream = self._open(f, b"")
            f.stream.close()
        except OSError as e:
            self._broken = True
            raise ArchiveWriteError(f"cannot write the zip archive: {os_error_sentence(e)}") from e
        finally:
            self._file = None

    def abort_file(self, handle: int) -> None:
        if self._file is not None:
            # Bytes of the entry may be out already; the archive is never completed.
            self._broken = self._broken or self._file.stream is not None
            self._file = None

    def symlink(self, path: RestorePath, node: Node) -> None:
        if not node.target or "\0" in node.target:
            raise TargetRefusedError("symlink without a valid target")
        info = _entry(_name(path), node, stat.S_IFLNK)
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        self._put(info, node.target.encode("utf-8", "surrogateescape"))

    def hardlink(self, path: RestorePath, node: Node, existing: RestorePath) -> None:
        raise AssertionError("hard links are restored as files in zip archives")

    def special(self, path: RestorePath, node: Node) -> None:
        kind = "fifo" if node.type == NodeType.FIFO else str(node.type)
        raise TargetRefusedError(f"zip archives cannot hold a {kind}")

    def finish(self) -> None:
        """Write the central directory (zip64 when needed)."""
        self._check()
        try:
            self._zip.close()
        except OSError as e:
            raise ArchiveWriteError(f"cannot write the zip archive: {os_error_sentence(e)}") from e
        self._finished = True

    def close(self) -> None:
        if not self._finished:
            # Drop the archive without a central directory: zipfile's own close would
            # write one and make a failed restore look complete.
            self._zip.fp = None
