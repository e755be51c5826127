"""``BucketObjects``: where the objects of every bucket live, as ``BucketStore`` needs
it. Two implementations pass one conformance suite: ``BucketFiles`` (a directory on
the server's disk, the embedded default) and ``BucketS3`` (an S3-compatible object
store shared by every server instance).

The store calls every method from a worker thread and holds the bucket's row lock in
PostgreSQL around each change, so an implementation needs no locking of its own
between server instances; it must only make each single change atomic (a reader sees
a whole object or none). Names containing ``~`` (temp uploads, the trash) are never
keys (``keys.check_key``), so no device can reach them.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from comet.server.buckets.errors import RangeError

# Lock objects are advisory and must come and go; they live apart from the data, so
# mutating them can never hide or replace a pack, index or snapshot.
MUTABLE_PREFIX = "locks/"


def is_mutable(key: str) -> bool:
    """May ``key`` be overwritten and deleted freely even in an immutable bucket?"""
    return key.startswith(MUTABLE_PREFIX)


@dataclass(frozen=True)
class ObjectEntry:
    key: str
    size: int
    # When the storage last wrote the object, by the storage's own clock (a file's
    # mtime, S3's LastModified); devices only ever compare two such times.
    mtime_ns: int | None = None


@dataclass(frozen=True)
class TrashEntry:
    key: str
    size: int
    deleted_at: datetime


def range_length(key: str, size: int, offset: int, length: int | None) -> int:
    """How many bytes ``[offset, offset+length)`` (to the end when None) covers."""
    end = size if length is None else offset + length
    if offset > size or end > size:
        raise RangeError(f"range [{offset}, {end}) is beyond the end of {key!r} ({size} bytes)")
    return end - offset


class PendingObject(Protocol):
    """An upload in progress, invisible until the store publishes it."""

    key: str
    size: int  # bytes written so far

    def write(self, data: bytes) -> None:
        """Append ``data``; BucketStorageError when the storage cannot hold it."""

    def finish(self) -> None:
        """Make the bytes durable where the implementation stages them; still not
        visible. Called once, after the last write."""

    def discard(self) -> None:
        """Drop the upload (idempotent, never raises); a published object stays."""


class ObjectReader(Protocol):
    """A range of an object being read; reads continue where the last one ended."""

    size: int  # the bytes in the range

    def read(self, count: int) -> bytes:
        """Up to ``count`` bytes; ``b""`` only at the end."""

    def close(self) -> None: ...


class BucketObjects(Protocol):
    def create(self, bucket_id: str) -> None:
        """Prepare a new, empty bucket."""

    def remove_bucket(self, bucket_id: str) -> None:
        """Remove the bucket and everything in it, trash included. Idempotent."""

    def begin_put(self, bucket_id: str, key: str) -> PendingObject:
        """Start an upload of ``key``; nothing is visible until ``publish``."""

    def publish(self, pending: PendingObject, written: datetime) -> None:
        """Make the finished upload the object ``key``, replacing any (atomic).
        KeyConflictError when the key's path cannot hold an object."""

    def publish_new(self, pending: PendingObject, written: datetime) -> bool:
        """Publish only where no object ``key`` exists (immutable buckets); an object
        with the very same bytes is left as it is (a retried put) and False returned;
        different bytes raise ImmutableObjectError. ``written`` starts the object's
        protection. True when the object was created."""

    def size_of(self, bucket_id: str, key: str) -> int:
        """The object's size, 0 when there is none."""

    def stat(self, bucket_id: str, key: str) -> ObjectEntry:
        """ObjectNotFoundError when there is no such object."""

    def open_range(self, bucket_id: str, key: str, offset: int, length: int | None) -> ObjectReader:
        """The bytes ``[offset, offset+length)`` (to the end when None).
        ObjectNotFoundError when there is no such object, RangeError when the range
        goes past its end."""

    def delete(self, bucket_id: str, key: str) -> int:
        """Remove the object; return the bytes freed (0 when there was none)."""

    def list(self, bucket_id: str, prefix: str) -> Iterator[ObjectEntry]:
        """Every object whose key starts with ``prefix`` (a plain string prefix), with
        its mtime; never temp uploads or the trash. Any order."""

    def usage(self, bucket_id: str, *, stale_temp_seconds: float = 24 * 3600) -> int:
        """The bytes of every object in the bucket (not the trash). Upload debris of
        servers that died mid-put, older than ``stale_temp_seconds``, is removed."""

    # ------------------------------------------------------------- immutable buckets

    def written_at(self, bucket_id: str, key: str) -> datetime | None:
        """When the object's protection started; None when there is no object."""

    def restamp(self, bucket_id: str, key: str, written: datetime) -> bool:
        """Move the start of the object's protection to ``written`` when that is
        later (never earlier). False when there is no such object."""

    def move_to_trash(self, bucket_id: str, key: str, now: datetime) -> int:
        """Move the object into the bucket's trash, dated ``now``; returns its size
        (0 when there was none)."""

    def trash_entries(self, bucket_id: str) -> builtins.list[TrashEntry]:
        """What the trash holds, sorted by key then deletion time."""

    def purge_trash(self, bucket_id: str, deleted_before: datetime) -> int:
        """Remove for good what was deleted before ``deleted_before``; how many."""

    def restore(self, bucket_id: str, key: str) -> int:
        """Put the most recently deleted ``key`` back; its size, 0 when the trash has
        no such object or the key exists again (it is never overwritten)."""

    def last_change(self, bucket_id: str) -> datetime | None:
        """When the newest object was written or the latest trash entry deleted."""
