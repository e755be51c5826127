"""The server-side trash of immutable buckets, and their no-overwrite writes.

An object deleted from an immutable bucket (only ever with a delete grant, and only
once older than the bucket's protection period) is renamed into
``<bucket>/~trash/<key path>~<deleted at, ns>``: no key can contain ``~``, so no
device can list, read, write or delete it. It stays there for another protection
period, then ``purge`` removes it for good; until then a SUPER admin can put it
back (``restore``). Synchronous, like ``BucketFiles``: called from worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from comet.server.buckets.errors import BucketStorageError, ImmutableObjectError
from comet.server.buckets.files import BucketFiles, PendingObject
from comet.server.buckets.keys import check_key

TRASH_DIR = "~trash"
# Lock objects are advisory and must come and go; they live apart from the data, so
# mutating them can never hide or replace a pack, index or snapshot.
MUTABLE_PREFIX = "locks/"
_COMPARE_PIECE = 1 << 20


def is_mutable(key: str) -> bool:
    return key.startswith(MUTABLE_PREFIX)


@dataclass(frozen=True)
class TrashEntry:
    key: str
    size: int
    deleted_at: datetime
    path: Path


def _same_content(a: Path, b: Path) -> bool:
    with a.open("rb") as fa, b.open("rb") as fb:
        if os.fstat(fa.fileno()).st_size != os.fstat(fb.fileno()).st_size:
            return False
        while True:
            pa, pb = fa.read(_COMPARE_PIECE), fb.read(_COMPARE_PIECE)
            if pa != pb:
                return False
            if not pa:
                return True


def publish_new(pending: PendingObject) -> bool:
    """Publish an upload only where no object exists yet (a hard link, which never
    replaces). An object already there with the very same bytes is left as it is (a
    retried put); different bytes are refused. True when the object was created."""
    temp, target = pending.temp_path, pending.target_path
    try:
        try:
            os.link(temp, target)
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(temp, target)
    except FileExistsError:
        if target.is_file() and _same_content(temp, target):
            pending.discard()
            return False
        raise ImmutableObjectError(
            f"{pending.key!r} already exists in this immutable vault and cannot be overwritten"
        ) from None
    except OSError as e:
        raise BucketStorageError(f"cannot write {pending.key!r}: {e.strerror or e}") from e
    pending.discard()  # the temp name; the object keeps its own link
    return True


def object_written_at(files: BucketFiles, bucket_id: str, key: str) -> datetime | None:
    path = files.bucket_dir(bucket_id).joinpath(*check_key(key).split("/"))
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
            return None
        raise BucketStorageError(f"cannot stat {key!r}: {e.strerror or e}") from e


def restamp(files: BucketFiles, bucket_id: str, key: str, written: datetime) -> bool:
    """Date the object as written at ``written`` when that is later than it is now, so
    its protection (which runs from that date) lasts longer; never earlier. False when
    there is no such object."""
    path = files.bucket_dir(bucket_id).joinpath(*check_key(key).split("/"))
    stamp = written.timestamp()
    try:
        st = path.stat()
        if stamp > st.st_mtime:
            os.utime(path, (st.st_atime, stamp))
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
            return False
        raise BucketStorageError(f"cannot protect {key!r}: {e.strerror or e}") from e
    return True


def move_to_trash(files: BucketFiles, bucket_id: str, key: str, now: datetime) -> int:
    """Move the object into the trash; returns its size (0 when there was none)."""
    root = files.bucket_dir(bucket_id)
    source = root.joinpath(*check_key(key).split("/"))
    stamp = int(now.timestamp() * 1e9)
    target = root / TRASH_DIR / Path(*key.split("/")).parent / f"{source.name}~{stamp}"
    try:
        size = source.stat().st_size
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.rename(source, target)
    except FileNotFoundError:
        return 0
    except OSError as e:
        raise BucketStorageError(f"cannot delete {key!r}: {e.strerror or e}") from e
    return size


def entries(files: BucketFiles, bucket_id: str) -> list[TrashEntry]:
    trash = files.bucket_dir(bucket_id) / TRASH_DIR
    found: list[TrashEntry] = []
    for dirpath, _dirs, names in os.walk(trash):
        for name in names:
            base, sep, stamp = name.rpartition("~")
            if not sep or not stamp.isdigit():
                continue
            path = Path(dirpath) / name
            rel = path.parent.relative_to(trash)
            key = base if rel == Path(".") else f"{rel.as_posix()}/{base}"
            with contextlib.suppress(FileNotFoundError):
                found.append(
                    TrashEntry(
                        key,
                        path.stat().st_size,
                        datetime.fromtimestamp(int(stamp) / 1e9, UTC),
                        path,
                    )
                )
    return sorted(found, key=lambda e: (e.key, e.deleted_at))


def purge(files: BucketFiles, bucket_id: str, deleted_before: datetime) -> int:
    """Remove for good what was deleted before ``deleted_before``; returns how many."""
    removed = 0
    for entry in entries(files, bucket_id):
        if entry.deleted_at < deleted_before:
            with contextlib.suppress(FileNotFoundError):
                entry.path.unlink()
                removed += 1
    return removed


def restore(files: BucketFiles, bucket_id: str, key: str) -> int:
    """Put the most recently deleted ``key`` back; returns its size, 0 when the trash
    has no such object or the key exists again (it is never overwritten)."""
    candidates = [e for e in entries(files, bucket_id) if e.key == key]
    if not candidates:
        return 0
    entry = candidates[-1]
    target = files.bucket_dir(bucket_id).joinpath(*check_key(key).split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(entry.path, target)
    except FileExistsError:
        return 0
    entry.path.unlink()
    return entry.size


def last_change(files: BucketFiles, bucket_id: str) -> datetime | None:
    """When the bucket's newest object was written or its latest trash entry deleted:
    the bucket as a whole is protected until a protection period after that."""
    root = files.bucket_dir(bucket_id)
    newest: datetime | None = None
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != "~tmp"]
        for name in names:
            path = Path(dirpath) / name
            _base, sep, stamp = name.rpartition("~")
            try:
                if sep and stamp.isdigit() and TRASH_DIR in path.relative_to(root).parts:
                    when = datetime.fromtimestamp(int(stamp) / 1e9, UTC)
                else:
                    when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            except FileNotFoundError:
                continue
            newest = when if newest is None or when > newest else newest
    return newest
