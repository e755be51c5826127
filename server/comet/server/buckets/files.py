"""``BucketFiles``: the objects of every bucket, as files on the server's disk (the
embedded default implementation of ``objects.BucketObjects``).

Layout: ``<root>/<bucket_id>/<key path>`` holds each object; ``/`` in keys becomes
directories. Uploads are written to ``<root>/<bucket_id>/~tmp/`` (no key can contain
``~``), fsynced, then renamed into place, so a reader sees a whole object or none.
Synchronous: the async store calls it from worker threads.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

from comet.server.buckets import trash
from comet.server.buckets.errors import (
    BucketStorageError,
    KeyConflictError,
    ObjectNotFoundError,
)
from comet.server.buckets.keys import check_key, check_prefix
from comet.server.buckets.objects import ObjectEntry, PendingObject, TrashEntry, range_length

TEMP_DIR = "~tmp"
_BUCKET_ID_RE = re.compile(r"^[0-9a-f-]{36}$")
# errno values meaning "no object at this path": missing, a parent is a file, or the
# path is a directory (never an object).
_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.EISDIR)


def _storage_error(e: OSError, action: str, key: str) -> BucketStorageError:
    if e.errno == errno.ENOSPC:
        return BucketStorageError(f"cannot {action} {key!r}: the server's disk is full")
    return BucketStorageError(f"cannot {action} {key!r}: {e.strerror or e}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PendingFile:
    """An upload in progress: bytes go to a temp file until ``publish`` renames it
    over the object, or ``discard`` removes it."""

    def __init__(self, temp: Path, target: Path, key: str) -> None:
        self._temp = temp
        self._target = target
        self.key = key
        self.size = 0
        self._file: BinaryIO | None = temp.open("xb")

    @property
    def temp_path(self) -> Path:
        return self._temp

    @property
    def target_path(self) -> Path:
        return self._target

    def write(self, data: bytes) -> None:
        assert self._file is not None
        try:
            self._file.write(data)
        except OSError as e:
            raise _storage_error(e, "write", self.key) from e
        self.size += len(data)

    def finish(self) -> None:
        """Make the bytes durable; the object is not visible yet."""
        assert self._file is not None
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as e:
            raise _storage_error(e, "write", self.key) from e
        self._file = None

    def publish(self) -> None:
        """Rename the finished upload over the object (atomic) and make that durable."""
        assert self._file is None, "finish() first"
        try:
            try:
                os.replace(self._temp, self._target)
            except FileNotFoundError:
                self._target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self._temp, self._target)
            _fsync_dir(self._target.parent)
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as e:
            raise KeyConflictError(
                f"cannot store {self.key!r}: a part of its path is an object, or it names"
                " a folder of other objects"
            ) from e
        except OSError as e:
            raise _storage_error(e, "write", self.key) from e

    def discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            self._temp.unlink(missing_ok=True)


class FileReader:
    """An open object; reads continue from where the last one ended."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self._file = file
        self.size = size

    def read(self, count: int) -> bytes:
        return self._file.read(count)

    def close(self) -> None:
        self._file.close()


class BucketFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def bucket_dir(self, bucket_id: str) -> Path:
        if not _BUCKET_ID_RE.match(bucket_id):
            raise ValueError(f"not a bucket id: {bucket_id!r}")
        return self.root / bucket_id

    def _path(self, bucket_id: str, key: str) -> Path:
        return self.bucket_dir(bucket_id).joinpath(*check_key(key).split("/"))

    def create(self, bucket_id: str) -> None:
        try:
            (self.bucket_dir(bucket_id) / TEMP_DIR).mkdir(parents=True, mode=0o700)
        except OSError as e:
            raise _storage_error(e, "create bucket", bucket_id) from e

    def remove_bucket(self, bucket_id: str) -> None:
        shutil.rmtree(self.bucket_dir(bucket_id), ignore_errors=True)

    def begin_put(self, bucket_id: str, key: str) -> PendingFile:
        target = self._path(bucket_id, key)
        temp_dir = self.bucket_dir(bucket_id) / TEMP_DIR
        temp = temp_dir / f"{secrets.token_hex(12)}~"
        try:
            try:
                return PendingFile(temp, target, key)
            except FileNotFoundError:
                temp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                return PendingFile(temp, target, key)
        except OSError as e:
            raise _storage_error(e, "write", key) from e

    def size_of(self, bucket_id: str, key: str) -> int:
        """The object's size, 0 when there is none."""
        try:
            st = self._path(bucket_id, key).stat()
        except OSError as e:
            if e.errno in _MISSING:
                return 0
            raise _storage_error(e, "stat", key) from e
        return st.st_size if S_ISREG(st.st_mode) else 0

    def stat(self, bucket_id: str, key: str) -> ObjectEntry:
        try:
            st = self._path(bucket_id, key).stat()
        except OSError as e:
            if e.errno in _MISSING:
                raise ObjectNotFoundError(f"object {key!r} does not exist") from e
            raise _storage_error(e, "stat", key) from e
        if not S_ISREG(st.st_mode):
            raise ObjectNotFoundError(f"object {key!r} does not exist")
        return ObjectEntry(key, st.st_size, st.st_mtime_ns)

    def publish(self, pending: PendingObject, written: datetime) -> None:
        assert isinstance(pending, PendingFile)
        pending.publish()

    def publish_new(self, pending: PendingObject, written: datetime) -> bool:
        assert isinstance(pending, PendingFile)
        return trash.publish_new(pending)

    def open_range(self, bucket_id: str, key: str, offset: int, length: int | None) -> FileReader:
        path = self._path(bucket_id, key)
        try:
            file = path.open("rb")
        except OSError as e:
            if e.errno in _MISSING:
                raise ObjectNotFoundError(f"object {key!r} does not exist") from e
            raise _storage_error(e, "read", key) from e
        try:
            count = range_length(key, os.fstat(file.fileno()).st_size, offset, length)
            if offset:
                file.seek(offset)
        except BaseException:
            file.close()
            raise
        return FileReader(file, count)

    def delete(self, bucket_id: str, key: str) -> int:
        """Remove the object; return the bytes freed (0 when there was none)."""
        path = self._path(bucket_id, key)
        try:
            st = path.lstat()
            if not S_ISREG(st.st_mode):
                return 0
            path.unlink()
        except OSError as e:
            if e.errno in _MISSING:
                return 0
            raise _storage_error(e, "delete", key) from e
        return st.st_size

    def list(self, bucket_id: str, prefix: str) -> Iterator[ObjectEntry]:
        check_prefix(prefix)
        # Only the directory holding the prefix's last segment can contain matches.
        head, _, _ = prefix.rpartition("/")
        root = self.bucket_dir(bucket_id)
        start = root.joinpath(*head.split("/")) if head else root
        return self._walk(start, f"{head}/" if head else "", prefix)

    def _walk(self, directory: Path, dir_key: str, prefix: str) -> Iterator[ObjectEntry]:
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as e:
            if e.errno in _MISSING:
                return
            raise _storage_error(e, "list", dir_key or "/") from e
        for entry in entries:
            if "~" in entry.name:
                continue  # the temp dir, or debris no key can name
            key = dir_key + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if key.startswith(prefix) or prefix.startswith(key + "/"):
                        yield from self._walk(Path(entry.path), key + "/", prefix)
                elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                    st = entry.stat(follow_symlinks=False)
                    yield ObjectEntry(key, st.st_size, st.st_mtime_ns)
            except FileNotFoundError:
                continue  # deleted while listing
            except OSError as e:
                raise _storage_error(e, "list", key) from e

    def usage(self, bucket_id: str, *, stale_temp_seconds: float = 24 * 3600) -> int:
        """The bytes of every object in the bucket. Temp files of uploads that ended
        long ago (the server died mid-put) are removed on the way."""
        temp_dir = self.bucket_dir(bucket_id) / TEMP_DIR
        cutoff = time.time() - stale_temp_seconds
        with contextlib.suppress(FileNotFoundError), os.scandir(temp_dir) as it:
            for entry in it:
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
        return sum(entry.size for entry in self.list(bucket_id, ""))

    # ------------------------------------------------------------- immutable buckets

    def written_at(self, bucket_id: str, key: str) -> datetime | None:
        return trash.object_written_at(self._path(bucket_id, key))

    def restamp(self, bucket_id: str, key: str, written: datetime) -> bool:
        return trash.restamp(self._path(bucket_id, key), key, written)

    def move_to_trash(self, bucket_id: str, key: str, now: datetime) -> int:
        return trash.move_to_trash(self.bucket_dir(bucket_id), check_key(key), now)

    def trash_entries(self, bucket_id: str) -> builtins.list[TrashEntry]:
        return [e.entry for e in trash.entries(self.bucket_dir(bucket_id))]

    def purge_trash(self, bucket_id: str, deleted_before: datetime) -> int:
        return trash.purge(self.bucket_dir(bucket_id), deleted_before)

    def restore(self, bucket_id: str, key: str) -> int:
        return trash.restore(self.bucket_dir(bucket_id), check_key(key))

    def last_change(self, bucket_id: str) -> datetime | None:
        return trash.last_change(self.bucket_dir(bucket_id))
