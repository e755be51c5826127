"""``BucketStore``: bucket records in PostgreSQL and their objects on disk, kept in
step. Every change to a bucket's objects happens while its row is locked
(``SELECT … FOR UPDATE``), so the usage count and the quota check agree with the
disk even with concurrent puts on several server instances. A put also locks the
rows of the account's other buckets, so the account quota holds across buckets.

Limits (``BucketPolicy``, overridable per account by its policy's
``storage_quota_bytes`` and ``max_buckets``; 0 there means "the server's default",
-1 "unlimited"): each bucket may have its own quota, the account's buckets together
hold at most the account quota, and an account has at most ``max_buckets`` buckets."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comet.server.buckets import credentials
from comet.server.buckets.errors import (
    BucketAuthError,
    BucketLimitError,
    BucketStorageError,
    QuotaExceededError,
    SizeMismatchError,
)
from comet.server.buckets.files import BucketFiles, ObjectEntry, ObjectReader, range_length
from comet.server.buckets.keys import check_key, check_prefix
from comet.server.clock import Clock
from comet.server.errors import NotFoundError
from comet.server.secret_box import SecretBox
from comet.server.store.models import Bucket, Device, ServerSetting, User
from comet.server.store.policies import PolicyRecord, effective_policy

log = logging.getLogger(__name__)

# Object data travels in pieces of at most this size (see storage.proto).
CHUNK_SIZE = 1024 * 1024
# Defaults when neither the server's configuration nor a policy says otherwise.
DEFAULT_ACCOUNT_QUOTA_BYTES = 1 << 40  # 1 TiB
DEFAULT_MAX_BUCKETS = 10

_SECRET_SETTING = "sealed:bucket-credentials"


@dataclass(frozen=True)
class BucketRecord:
    bucket_id: str
    user_id: str  # "" once the account was deleted with --keep-data
    quota_bytes: int  # 0 = only the account's quota applies
    used_bytes: int
    created_at: datetime
    owner: str = ""  # the account's username (or the deleted account's)
    # The device whose credential opened it (set by ``authenticate``).
    device_id: str = ""


@dataclass(frozen=True)
class NewBucket:
    record: BucketRecord
    key: str  # the creating device's credential for the bucket


@dataclass(frozen=True)
class BucketPolicy:
    # Quota of new buckets, and the most a creator may ask for; 0 = unlimited.
    quota_bytes: int = 0
    # What all of an account's buckets may hold together; 0 = unlimited.
    account_quota_bytes: int = DEFAULT_ACCOUNT_QUOTA_BYTES
    # How many buckets an account may have; 0 = unlimited.
    max_buckets: int = DEFAULT_MAX_BUCKETS

    def grant(self, requested: int) -> int:
        if not self.quota_bytes:
            return requested
        return min(requested, self.quota_bytes) if requested else self.quota_bytes


@dataclass(frozen=True)
class AccountLimits:
    quota_bytes: int  # 0 = unlimited
    max_buckets: int  # 0 = unlimited


def account_limits(server: BucketPolicy, policy: PolicyRecord | None) -> AccountLimits:
    """The server's defaults, overridden by the account's policy where it says so."""

    def pick(name: str, default: int) -> int:
        value = int(policy.body.get(name, 0) or 0) if policy else 0
        if value == 0:
            return default
        return value if value > 0 else 0  # -1: unlimited

    return AccountLimits(
        pick("storage_quota_bytes", server.account_quota_bytes),
        pick("max_buckets", server.max_buckets),
    )


def _record(row: Bucket, owner: str = "") -> BucketRecord:
    return BucketRecord(
        row.id,
        row.user_id or "",
        row.quota_bytes,
        row.used_bytes,
        row.created_at,
        owner or row.former_owner,
    )


def _quota_error(used: int, quota: int, key: str, needed: int, whose: str) -> QuotaExceededError:
    return QuotaExceededError(
        f"quota exceeded: storing {key!r} needs {needed} more bytes, but {whose} has"
        f" {used} of its {quota} bytes in use; delete old snapshots or ask an administrator"
        " to raise the quota"
    )


class BucketStore:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        files: BucketFiles,
        policy: BucketPolicy,
        *,
        box: SecretBox,
    ) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self.files = files
        self._policy = policy
        self._box = box
        self._secret: bytes | None = None

    async def _credential_secret(self) -> bytes:
        """The key credentials are derived under: random, shared by every instance
        through the database, stored there sealed with the server key so that a copy
        of the database alone cannot forge credentials."""
        if self._secret is None:
            for _ in range(2):
                async with self._sessions() as s:
                    sealed = await s.scalar(
                        select(ServerSetting.value).where(ServerSetting.key == _SECRET_SETTING)
                    )
                    if sealed is None:
                        new = self._box.seal(os.urandom(32).hex(), context=_SECRET_SETTING)
                        s.add(ServerSetting(key=_SECRET_SETTING, value=new.encode()))
                        try:
                            await s.commit()
                        except IntegrityError:
                            continue  # another instance made it first: read theirs
                        sealed = new.encode()
                self._secret = bytes.fromhex(
                    self._box.open(sealed.decode(), context=_SECRET_SETTING)
                )
                break
        assert self._secret is not None
        return self._secret

    # ------------------------------------------------------------- records

    async def create(self, user_id: str, *, device_id: str, quota_bytes: int = 0) -> NewBucket:
        """A new bucket of ``user_id``'s account, and ``device_id``'s credential for it.
        Refused when the account already has as many buckets as its limit allows."""
        bucket_id = str(uuid.uuid4())
        row = Bucket(
            id=bucket_id,
            user_id=user_id,
            quota_bytes=self._policy.grant(quota_bytes),
            used_bytes=0,
            created_at=self._clock.now(),
            former_owner="",
        )
        await asyncio.to_thread(self.files.create, bucket_id)
        try:
            async with self._sessions() as s, s.begin():
                # The user row lock serialises creations, so the count cannot overrun.
                user = await s.get(User, user_id, with_for_update=True)
                if user is None:
                    raise NotFoundError("the account no longer exists")
                limits = account_limits(self._policy, await effective_policy(s, user))
                count = await s.scalar(
                    select(func.count()).select_from(Bucket).where(Bucket.user_id == user_id)
                )
                if limits.max_buckets and (count or 0) >= limits.max_buckets:
                    raise BucketLimitError(
                        f"the account {user.username!r} already has {count} of its"
                        f" {limits.max_buckets} buckets; delete one or ask an administrator to"
                        " raise max_buckets in its policy"
                    )
                s.add(row)
                owner = user.username
        except BaseException as e:
            await asyncio.to_thread(shutil.rmtree, self.files.bucket_dir(bucket_id), True)
            if isinstance(e, IntegrityError):
                raise NotFoundError("the account no longer exists") from e
            raise
        key = credentials.issue(await self._credential_secret(), bucket_id, device_id)
        return NewBucket(_record(row, owner), key)

    async def credential(self, bucket_id: str, device_id: str) -> str:
        """``device_id``'s credential for ``bucket_id`` (the caller checked that the
        device belongs to the bucket's account; the credential is useless otherwise)."""
        return credentials.issue(await self._credential_secret(), bucket_id, device_id)

    async def list_buckets(
        self, *, user_id: str | None = None, username: str | None = None
    ) -> list[BucketRecord]:
        query = (
            select(Bucket, User.username)
            .outerjoin(User, User.id == Bucket.user_id)
            .order_by(Bucket.created_at, Bucket.id)
        )
        if user_id is not None:
            query = query.where(Bucket.user_id == user_id)
        if username is not None:
            query = query.where((User.username == username) | (Bucket.former_owner == username))
        async with self._sessions() as s:
            return [_record(row, name or "") for row, name in (await s.execute(query)).all()]

    async def delete_bucket(self, bucket_id: str) -> int:
        """Delete a bucket and all its objects; returns the bytes it held."""
        try:
            uuid.UUID(bucket_id)
        except ValueError:
            raise NotFoundError(f"no bucket {bucket_id!r}") from None
        async with self._sessions() as s, s.begin():
            row = await s.get(Bucket, bucket_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no bucket {bucket_id!r}")
            used = row.used_bytes
            await s.delete(row)
        await asyncio.to_thread(shutil.rmtree, self.files.bucket_dir(bucket_id), True)
        return used

    async def orphan_buckets(self, user_id: str, username: str) -> list[str]:
        """Record ``username`` on the account's buckets before the account is deleted
        (the rows outlive it when their data is kept); returns their ids."""
        async with self._sessions() as s, s.begin():
            result = await s.scalars(
                update(Bucket)
                .where(Bucket.user_id == user_id)
                .values(former_owner=username)
                .returning(Bucket.id)
            )
            return list(result)

    async def authenticate(self, bucket_id: str, key: str) -> BucketRecord:
        """The bucket ``bucket_id`` if ``key`` is the credential of a device that is
        not revoked and belongs to the bucket's (existing) account. Asked of the
        database on every call, so a revocation holds on every instance at once."""
        parsed = credentials.parse(key)
        row = None
        if parsed is not None:
            try:
                uuid.UUID(bucket_id)
            except ValueError:
                parsed = None
        if parsed is not None:
            async with self._sessions() as s:
                row = await s.scalar(
                    select(Bucket)
                    .join(User, User.id == Bucket.user_id)
                    .join(Device, Device.user_id == User.id)
                    .where(
                        Bucket.id == bucket_id,
                        Device.id == parsed.device_id,
                        Device.revoked_at.is_(None),
                    )
                )
        secret = await self._credential_secret()
        if row is None or parsed is None or not credentials.matches(secret, bucket_id, parsed):
            raise BucketAuthError("unknown bucket, wrong bucket key, or a revoked device")
        return dataclasses.replace(_record(row), device_id=parsed.device_id)

    async def recheck(self, bucket: BucketRecord) -> None:
        """Refuse (BucketAuthError) if the bucket or the device that opened it is gone
        or revoked since ``authenticate``; long streams call it as they go."""
        async with self._sessions() as s:
            await self._locked(s, bucket, lock=False)

    async def _locked(self, s: AsyncSession, bucket: BucketRecord, *, lock: bool = True) -> Bucket:
        """The bucket's row (locked unless ``lock`` is False); refused if the bucket,
        its account or the calling device went away since the call was authenticated
        (a long upload must not land after its device was revoked)."""
        query = select(Bucket).where(Bucket.id == bucket.bucket_id)
        row = await s.scalar(query.with_for_update() if lock else query)
        if row is None or row.user_id is None:
            raise BucketAuthError("unknown bucket, wrong bucket key, or a revoked device")
        if bucket.device_id:
            active = await s.scalar(
                select(Device.id).where(
                    Device.id == bucket.device_id,
                    Device.user_id == row.user_id,
                    Device.revoked_at.is_(None),
                )
            )
            if active is None:
                raise BucketAuthError("unknown bucket, wrong bucket key, or a revoked device")
        return row

    async def _account_room(self, s: AsyncSession, user_id: str, *, lock: bool) -> tuple[int, int]:
        """``(used, quota)`` of the account's buckets together (quota 0 = unlimited).
        With ``lock`` the account's bucket rows stay locked to the end of the
        transaction, so concurrent puts to different buckets cannot overrun it."""
        user = await s.get(User, user_id)
        if user is None:
            raise BucketAuthError("unknown bucket, wrong bucket key, or a revoked device")
        limits = account_limits(self._policy, await effective_policy(s, user))
        if not limits.quota_bytes:
            return 0, 0
        query = select(Bucket.used_bytes).where(Bucket.user_id == user_id).order_by(Bucket.id)
        if lock:
            query = query.with_for_update()
        used = sum((await s.scalars(query)).all())
        return used, limits.quota_bytes

    # ------------------------------------------------------------- objects

    async def put(
        self, bucket: BucketRecord, key: str, total_size: int, data: AsyncIterator[bytes]
    ) -> int:
        """Store ``data`` (exactly ``total_size`` bytes) as ``key``, atomically. Nothing
        of the upload remains when it fails (size mismatch, quota, disconnect)."""
        check_key(key)
        bucket_id = bucket.bucket_id
        # Refuse early what cannot fit, before reading it all.
        old = await asyncio.to_thread(self.files.size_of, bucket_id, key)
        if bucket.quota_bytes and bucket.used_bytes - old + total_size > bucket.quota_bytes:
            raise _quota_error(
                bucket.used_bytes, bucket.quota_bytes, key, total_size - old, "the bucket"
            )
        async with self._sessions() as s:
            account_used, account_quota = await self._account_room(s, bucket.user_id, lock=False)
        if account_quota and account_used - old + total_size > account_quota:
            raise _quota_error(account_used, account_quota, key, total_size - old, "the account")
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
                account_used, account_quota = await self._account_room(s, bucket.user_id, lock=True)
                row = await self._locked(s, bucket)
                old = await asyncio.to_thread(self.files.size_of, bucket_id, key)
                delta = total_size - old
                if row.quota_bytes and delta > 0 and row.used_bytes + delta > row.quota_bytes:
                    raise _quota_error(row.used_bytes, row.quota_bytes, key, delta, "the bucket")
                if account_quota and delta > 0 and account_used + delta > account_quota:
                    raise _quota_error(account_used, account_quota, key, delta, "the account")
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
            row = await self._locked(s, bucket)
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
