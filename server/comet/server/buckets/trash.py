"""The trash of immutable buckets on disk, and their no-overwrite writes (the file
side of ``BucketFiles``).

An object deleted from an immutable bucket (only ever with a delete grant, and only
once older than the bucket's protection period) is renamed into
``<bucket>/~trash/<key path>~<deleted at, ns>``: no key can contain ``~``, so no
device can list, read, write or delete it. It stays there for another protection
period, then ``purge`` removes it for good; until then a SUPER admin can put it
back (``restore``). Synchronous: called from worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from comet.server.buckets.errors import BucketStorageError, ImmutableObjectError
from comet.server.buckets.objects import TrashEntry, is_mutable

if TYPE_CHECKING:
    from comet.server.buckets.files import PendingFile

__all__ = ["TrashEntry", "is_mutable"]

TRASH_DIR = "~trash"
_COMPARE_PIECE = 1 << 20
_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.EISDIR)


@dataclass(frozen=True)
class TrashFile:
    entry: TrashEntry
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


def publish_new(pending: PendingFile) -> bool:
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


def object_written_at(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as e:
        if e.errno in _MISSING:
            return None
        raise BucketStorageError(f"cannot stat {path.name!r}: {e.strerror or e}") from e


def restamp(path: Path, key: str, written: datetime) -> bool:
    """Date the object as written at ``written`` when that is later than it is now, so
    its protection (which runs from that date) lasts longer; never earlier. False when
    there is no such object."""
    stamp = written.timestamp()
    try:
        st = path.stat()
        if stamp > st.st_mtime:
            os.utime(path, (st.st_atime, stamp))
    except OSError as e:
        if e.errno in _MISSING:
            return False
        raise BucketStorageError(f"cannot protect {key!r}: {e.strerror or e}") from e
    return True


def move_to_trash(root: Path, key: str, now: datetime) -> int:
    """Move the object into the trash; returns its size (0 when there was none)."""
    source = root.joinpath(*key.split("/"))
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


def entries(root: Path) -> list[TrashFile]:
    trash = root / TRASH_DIR
    found: list[TrashFile] = []
    for dirpath, _dirs, names in os.walk(trash):
        for name in names:
            base, sep, stamp = name.rpartition("~")
            if not sep or not stamp.isdigit():
                continue
            path = Path(dirpath) / name
            rel = path.parent.relative_to(trash)
            key = base if rel == Path(".") else f"{rel.as_posix()}/{base}"
            with contextlib.suppress(FileNotFoundError):
                when = datetime.fromtimestamp(int(stamp) / 1e9, UTC)
                found.append(TrashFile(TrashEntry(key, path.stat().st_size, when), path))
    return sorted(found, key=lambda e: (e.entry.key, e.entry.deleted_at))


def purge(root: Path, deleted_before: datetime) -> int:
    """Remove for good what was deleted before ``deleted_before``; returns how many."""
    removed = 0
    for found in entries(root):
        if found.entry.deleted_at < deleted_before:
            with contextlib.suppress(FileNotFoundError):
                found.path.unlink()
                removed += 1
    return removed


def restore(root: Path, key: str) -> int:
    """Put the most recently deleted ``key`` back; returns its size, 0 when the trash
    has no such object or the key exists again (it is never overwritten)."""
    candidates = [e for e in entries(root) if e.entry.key == key]
    if not candidates:
        return 0
    found = candidates[-1]
    target = root.joinpath(*key.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(found.path, target)
    except FileExistsError:
        return 0
    found.path.unlink()
    return found.entry.size


def last_change(root: Path) -> datetime | None:
    """When the bucket's newest object was written or its latest trash entry deleted:
    the bucket as a whole is protected until a protection period after that."""
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
