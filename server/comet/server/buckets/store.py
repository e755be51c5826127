"""``BucketStore``: bucket records in PostgreSQL and their objects on disk, kept in
step. Every change to a bucket's objects happens while its row is locked
(``SELECT … FOR UPDATE``), so the usage count and the quota check agree with the
disk even with concurrent puts on several server instances."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comet.server.buckets.errors import (
    BucketAuthError,
    BucketStorageError,
    QuotaExceededError,
    SizeMismatchError,
)
from comet.server.buckets.files import BucketFiles, ObjectEntry, ObjectReader, range_length
from comet.server.buckets.keys import check_key, check_prefix
from comet.server.clock import Clock
from comet.server.errors import NotFoundError
from comet.server.store.models import Bucket, User

log = logging.getLogger(__name__)

# Object data travels in pieces of at most this size (see storage.proto).
CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class BucketRecord:
    bucket_id: str
    user_id: str
    quota_bytes: int  # 0 = unlimited
    used_bytes: int
    created_at: datetime


@dataclass(frozen=True)
class NewBucket:
    record: BucketRecord
    key: str  # the credential, known only to the creator


@dataclass(frozen=True)
class BucketPolicy:
    # Quota of new buckets, and the most a creator may ask for; 0 = unlimited.
    quota_bytes: int = 0

    def grant(self, requested: int) -> int:
        if not self.quota_bytes:
            return requested
        return min(requested, self.quota_bytes) if requested else self.quota_bytes


def key_hash(key: str) -> str:
    # Keys are 256 random bits, so a plain hash is enough (no salt or stretching).
    return hashlib.sha256(key.encode()).hexdigest()


def _record(row: Bucket) -> BucketRecord:
    return BucketRecord(row.id, row.user_id, row.quota_bytes, row.used_bytes, row.created_at)


def _quota_error(used: int, quota: int, key: str, needed: int) -> QuotaExceededError:
    return QuotaExceededError(
        f"quota exceeded: storing {key!r} needs {needed} more bytes, but the bucket has"
        f" {used} of its {quota} bytes in use"
    )


class BucketStore:
    def __init__(
        self, engine: AsyncEngine, clock: Clock, files: BucketFiles, policy: BucketPolicy
    ) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self.files = files
        self._policy = policy

    # ------------------------------------------------------------- records

    async def create(self, user_id: str, *, quota_bytes: int = 0) -> NewBucket:
        bucket_id = str(uuid.uuid4())
        key = secrets.token_urlsafe(32)
        row = Bucket(
            id=bucket_id,
            user_id=user_id,
            key_hash=key_hash(key),
            quota_bytes=self._policy.grant(quota_bytes),
            used_bytes=0,
            created_at=self._clock.now(),
        )
        await asyncio.to_thread(self.files.create, bucket_id)
        try:
            async with self._sessions() as s:
                s.add(row)
                await s.commit()
        except IntegrityError as e:
            await asyncio.to_thread(shutil.rmtree, self.files.bucket_dir(bucket_id), True)
            raise NotFoundError("the account no longer exists") from e
        return NewBucket(_record(row), key)

    async def list_buckets(self, *, user_id: str | None = None) -> list[BucketRecord]:
        query = select(Bucket).order_by(Bucket.created_at, Bucket.id)
        if user_id is not None:
            query = query.where(Bucket.user_id == user_id)
        async with self._sessions() as s:
            return [_record(row) for row in (await s.scalars(query)).all()]

    async def authenticate(self, bucket_id: str, key: str) -> BucketRecord:
        """The bucket ``bucket_id`` if ``key`` is its credential and its account exists."""
        try:
            uuid.UUID(bucket_id)
        except ValueError:
            row = None
        else:
            async with self._sessions() as s:
                row = await s.scalar(
                    select(Bucket)
                    .join(User, User.id == Bucket.user_id)
                    .where(Bucket.id == bucket_id)
                )
        if row is None or not hmac.compare_digest(row.key_hash, key_hash(key)):
            raise BucketAuthError("unknown bucket or wrong bucket key")
        return _record(row)

    async def _locked(self, s: AsyncSession, bucket_id: str) -> Bucket:
        row = await s.scalar(select(Bucket).where(Bucket.id == bucket_id).with_for_update())
        if row is None:  # deleted with its account since the call was authenticated
            raise BucketAuthError("unknown bucket or wrong bucket key")
        return row

    # ------------------------------------------------------------- objects

    async def put(
        self, bucket: BucketRecord, key: str, total_size: int, data: AsyncIterator[bytes]
    ) -> int:
        """Store ``data`` (exactly ``total_size`` bytes) as ``key``, atomically. Nothing
        of the upload remains when it fails (size mismatch, quota, disconnect)."""
        check_key(key)
        bucket_id = bucket.bucket_id
        if bucket.quota_bytes:  # refuse early what cannot fit, before reading it all
            old = await asyncio.to_thread(self.files.size_of, bucket_id, key)
            if bucket.used_bytes - old + total_size > bucket.quota_bytes:
                raise _quota_error(bucket.used_bytes, bucket.quota_bytes, key, total_size - old)
        pending = await asyncio.to_thread(self.files.begin_put, bucket_id, key)
        try:
            async for piece in data:
                if pending.size + len(piece) > total_size:
                    raise SizeMismatchError(f"put of {key!r} sent more than {total_size} bytes")
                await asyncio.to_thread(pending.write, piece)
            if pending.size != total_size:
                raise SizeMismatchError(
                    f"put of {key!r} announced {total_size} bytes but sent {pending.size}"
                )
            await asyncio.to_thread(pending.finish)
            async with self._sessions() as s, s.begin():
                row = await self._locked(s, bucket_id)
                old = await asyncio.to_thread(self.files.size_of, bucket_id, key)
                delta = total_size - old
                if row.quota_bytes and delta > 0 and row.used_bytes + delta > row.quota_bytes:
                    raise _quota_error(row.used_bytes, row.quota_bytes, key, delta)
                await asyncio.to_thread(pending.publish)
                row.used_bytes = max(0, row.used_bytes + delta)
        except BaseException:
            await asyncio.to_thread(pending.discard)
            raise
        return total_size

    async def read(
        self, bucket: BucketRecord, key: str, offset: int, length: int | None
    ) -> AsyncIterator[bytes]:
        """The object's bytes ``[offset, offset+length)`` in pieces of at most
        CHUNK_SIZE. A missing object or a bad range fails here, before any data."""
        check_key(key)
        reader = await asyncio.to_thread(self.files.open, bucket.bucket_id, key)
        try:
            count = range_length(key, reader.size, offset, length)
            if offset:
                await asyncio.to_thread(reader.seek, offset)
        except BaseException:
            reader.close()
            raise
        return self._pieces(reader, key, count)

    async def _pieces(self, reader: ObjectReader, key: str, count: int) -> AsyncIterator[bytes]:
        try:
            while count > 0:
                piece = await asyncio.to_thread(reader.read, min(CHUNK_SIZE, count))
                if not piece:
                    raise BucketStorageError(f"short read of {key!r}: it shrank while read")
                count -= len(piece)
                yield piece
        finally:
            reader.close()

    async def stat(self, bucket: BucketRecord, key: str) -> ObjectEntry:
        check_key(key)
        return await asyncio.to_thread(self.files.stat, bucket.bucket_id, key)

    async def delete(self, bucket: BucketRecord, key: str) -> None:
        """Idempotent: deleting a missing object succeeds."""
        check_key(key)
        async with self._sessions() as s, s.begin():
            row = await self._locked(s, bucket.bucket_id)
            freed = await asyncio.to_thread(self.files.delete, bucket.bucket_id, key)
            row.used_bytes = max(0, row.used_bytes - freed)

    async def list_objects(self, bucket: BucketRecord, prefix: str) -> list[ObjectEntry]:
        check_prefix(prefix)
        return await asyncio.to_thread(lambda: list(self.files.list(bucket.bucket_id, prefix)))

    # ------------------------------------------------------------- upkeep

    async def reconcile(self) -> None:
        """Recount every bucket's usage from its files (a server that died between a
        rename and its commit leaves the count off) and drop stale upload debris."""
        for record in await self.list_buckets():
            try:
                async with self._sessions() as s, s.begin():
                    row = await s.scalar(
                        select(Bucket).where(Bucket.id == record.bucket_id).with_for_update()
                    )
                    if row is None:
                        continue
                    used = await asyncio.to_thread(self.files.usage, row.id)
                    if used != row.used_bytes:
                        log.info("bucket %s: usage %d -> %d bytes", row.id, row.used_bytes, used)
                        row.used_bytes = used
            except Exception:  # one unreadable bucket must not stop the others
                log.exception("could not recount bucket %s", record.bucket_id)
