"""``LocalStorage``: a vault in a directory on a local or mounted filesystem.

Each key is a file under the root; ``/`` in keys becomes directories, created on the
first put below them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from stat import S_ISREG

from comet.agent.errors import os_error_sentence
from comet.agent.storage.base import (
    TEMP_MARKER,
    ObjectInfo,
    ObjectNotFoundError,
    StorageError,
    check_key,
    check_prefix,
    check_range,
    is_temp_name,
)

# errno values meaning "there is no object at this path": the file is missing, a parent
# is a file, or the path names a directory (which is never an object).
_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.EISDIR)


def _wrap(e: OSError, action: str, key: str, where: Path | None = None) -> StorageError:
    """Convert an OSError raised while doing ``action`` on ``key`` into a StorageError.
    ``where`` names the path when the OSError does not (a failed write or fsync)."""
    if e.errno in _MISSING:
        return ObjectNotFoundError(f"object {key!r} does not exist")
    place = e.filename or where
    at = f" ({place})" if place else ""
    if e.errno == errno.ENOSPC:
        return StorageError(f"cannot {action} {key!r}: the disk is full{at}")
    if e.errno == errno.EDQUOT:
        return StorageError(f"cannot {action} {key!r}: disk quota exceeded{at}")
    if e.errno == errno.EROFS:
        return StorageError(f"cannot {action} {key!r}: the vault is on a read-only filesystem{at}")
    if e.errno in (errno.EACCES, errno.EPERM):
        return StorageError(
            f"cannot {action} {key!r}: permission denied{at};"
            " check the vault directory's ownership and mode"
        )
    return StorageError(f"cannot {action} {key!r}: {e.strerror or e}{at}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_COPY_BLOCK = 1 << 20


def copy_file(src: int, dst: int, size: int) -> None:
    """Copy the first ``size`` bytes of ``src`` to ``dst``'s current position: in the
    kernel where ``sendfile`` to a file works, else in blocks of ``_COPY_BLOCK``."""
    done = 0
    try:
        while done < size:
            n = os.sendfile(dst, src, done, size - done)
            if n == 0:
                break
            done += n
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP) or done:
            raise
    while done < size:
        block = os.pread(src, min(_COPY_BLOCK, size - done), done)
        if not block:
            raise OSError(errno.EIO, f"the file to store came up short ({done} of {size} bytes)")
        view = memoryview(block)
        while view:
            view = view[os.write(dst, view) :]
        done += len(block)


class LocalStorage:
    """Objects as files below ``root``. Puts are atomic and durable (fsync of the file
    and of its directory, and of the parent of every directory it creates); deletes are
    durable (fsync of the directory). Temp files of interrupted puts are never listed;
    ``remove_temporary`` cleans them up."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put(self, key: str, data: bytes) -> None:
        def write(fd: int) -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]

        self._put(key, write)

    def put_file(self, key: str, fd: int, size: int) -> None:
        """``put`` of the first ``size`` bytes of the open file ``fd``, copied by the
        kernel (``sendfile``): a pack is stored without a buffer of its size."""

        def write(out: int) -> None:
            copy_file(fd, out, size)

        self._put(key, write)

    def _put(self, key: str, write: Callable[[int], None]) -> None:
        path = self._path(key)
        tmp = path.with_name(f"{path.name}{TEMP_MARKER}{secrets.token_hex(8)}")
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:
                self._makedirs(path.parent)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                try:
                    write(fd)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):  # keep the original error
                    tmp.unlink(missing_ok=True)
                raise
            _fsync_dir(path.parent)
        except OSError as e:
            if e.errno in _MISSING:  # e.g. a parent of the key is a file
                raise StorageError(
                    f"cannot write {key!r}: {os_error_sentence(e, path=self.root)}"
                ) from e
            raise _wrap(e, "write", key, path) from e

    def _makedirs(self, directory: Path) -> None:
        """Create ``directory`` and missing parents, each made durable in its parent (a
        crash must not lose a directory that holds a durable object)."""
        missing = []
        d = directory
        while d != d.parent and not d.is_dir():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                continue  # another writer made it meanwhile
            _fsync_dir(d.parent)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                count = check_range(key, os.fstat(f.fileno()).st_size, offset, length)
                f.seek(offset)
                data = f.read(count)
        except OSError as e:
            raise _wrap(e, "read", key) from e
        if len(data) != count:
            raise StorageError(f"short read of {key!r}: wanted {count} bytes, got {len(data)}")
        return data

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except OSError as e:
            raise _wrap(e, "stat", key) from e
        if not S_ISREG(st.st_mode):
            raise ObjectNotFoundError(f"object {key!r} does not exist")
        return ObjectInfo(key, st.st_size, st.st_mtime_ns)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
            _fsync_dir(path.parent)
        except OSError as e:
            if e.errno not in _MISSING:
                raise _wrap(e, "delete", key, path) from e

    def remove_temporary(self, before_ns: int) -> tuple[str, ...]:
        removed = []
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                if not is_temp_name(name):
                    continue
                path = Path(directory, name)
                try:
                    if path.lstat().st_mtime_ns < before_ns:
                        path.unlink()
                        removed.append(str(path.relative_to(self.root)))
                except FileNotFoundError:
                    continue  # its upload finished or another cleaner took it
                except OSError as e:
                    raise _wrap(e, "delete", name, path) from e
        for name in {str(Path(r).parent) for r in removed}:
            _fsync_dir(self.root / name)
        return tuple(removed)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        # Only the directory that holds the prefix's last segment can contain matches.
        head, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*head.split("/")) if head else self.root
        return self._walk(start, f"{head}/" if head else "", prefix)

    def _walk(self, directory: Path, dir_key: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as e:
            if e.errno in _MISSING:
                return
            raise _wrap(e, "list", dir_key or "/") from e
        for entry in entries:
            key = dir_key + entry.name
            if is_temp_name(entry.name):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if key.startswith(prefix) or prefix.startswith(key + "/"):
                        yield from self._walk(Path(entry.path), key + "/", prefix)
                elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                    st = entry.stat(follow_symlinks=False)
                    yield ObjectInfo(key, st.st_size, st.st_mtime_ns)
            except FileNotFoundError:
                continue  # deleted while we were listing
            except OSError as e:
                raise _wrap(e, "list", key) from e

    def close(self) -> None:
        pass
