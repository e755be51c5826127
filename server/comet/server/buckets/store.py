"""``BucketStore``: bucket records in PostgreSQL and their objects (on disk or in an
S3-compatible object store, ``objects.BucketObjects``), kept in step. A put reserves
its bytes under the account's bucket row locks (``SELECT … FOR UPDATE``) in a short
transaction that records its intent, writes the object with no lock held, then
counts it, so the quota holds exactly across concurrent puts on several server
instances without serialising their uploads; deletes and the other changes happen
while the bucket's row is locked.

Limits (``BucketPolicy``, overridable per account by its policy's
``storage_quota_bytes`` and ``max_buckets``; 0 there means "the server's default",
-1 "unlimited"): each bucket may have its own quota, the account's buckets together
hold at most the account quota, and an account has at most ``max_buckets`` buckets."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comet.server.buckets import credentials, grants, retention_window
from comet.server.buckets.errors import (
    BucketAuthError,
    BucketLimitError,
    BucketStorageError,
    DeleteGrantError,
    ImmutableObjectError,
    ObjectNotFoundError,
    ObjectProtectedError,
    QuotaExceededError,
    SizeMismatchError,
)
from comet.server.buckets.keys import check_key, check_prefix
from comet.server.buckets.objects import (
    BucketObjects,
    ObjectEntry,
    ObjectReader,
    TrashEntry,
    is_mutable,
)
from comet.server.clock import Clock
from comet.server.errors import InvalidRequestError, NotFoundError
from comet.server.secret_box import SecretBox
from comet.server.store.models import Bucket, BucketIntent, Device, ServerSetting, User
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
    immutable_seconds: int = 0  # protection period; 0 = an ordinary bucket


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
        immutable_seconds=row.immutable_seconds or 0,
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
        objects: BucketObjects,
        policy: BucketPolicy,
        *,
        box: SecretBox,
    ) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._clock = clock
        self.objects = objects
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

    async def create(
        self, user_id: str, *, device_id: str, quota_bytes: int = 0, immutable_seconds: int = 0
    ) -> NewBucket:
        """A new bucket of ``user_id``'s account, and ``device_id``'s credential for it.
        Refused when the account already has as many buckets as its limit allows. An
        immutable bucket (``immutable_seconds`` > 0) keeps that protection for life."""
        bucket_id = str(uuid.uuid4())
        row = Bucket(
            id=bucket_id,
            user_id=user_id,
            quota_bytes=self._policy.grant(quota_bytes),
            used_bytes=0,
            created_at=self._clock.now(),
            former_owner="",
            immutable_seconds=max(0, immutable_seconds),
        )
        await asyncio.to_thread(self.objects.create, bucket_id)
        try:
            async with self._sessions() as s, s.begin():
                # The user row lock serialises creations, so the count cannot overrun.
                user = await s.get(User, user_id, with_for_update=True)
                if user is None:
                    raise NotFoundError("the account no longer exists")
                policy = await effective_policy(s, user)
                forced = int(policy.body.get("force_immutable_days", 0) or 0) if policy else 0
                if forced and row.immutable_seconds < forced * 86400:
                    raise ImmutableObjectError(
                        f"the policy of {user.username!r} requires immutable vaults (at least"
                        f" {forced} days): add the vault with --immutable-days {forced} or more"
                    )
                limits = account_limits(self._policy, policy)
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
            await asyncio.to_thread(self.objects.remove_bucket, bucket_id)
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

    async def page_buckets(
        self, *, offset: int, limit: int, largest_first: bool = False
    ) -> tuple[list[BucketRecord], int]:
        """A page of the buckets in order of creation (or the largest first), and how
        many there are."""
        order = (
            (Bucket.used_bytes.desc(), Bucket.id)
            if largest_first
            else (Bucket.created_at, Bucket.id)
        )
        query = (
            select(Bucket, User.username)
            .outerjoin(User, User.id == Bucket.user_id)
            .order_by(*order)
            .offset(offset)
            .limit(limit)
        )
        async with self._sessions() as s:
            total = await s.scalar(select(func.count()).select_from(Bucket))
            rows = (await s.execute(query)).all()
        return [_record(row, name or "") for row, name in rows], int(total or 0)

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
            if row.immutable_seconds:
                changed = await asyncio.to_thread(self.objects.last_change, bucket_id)
                if changed is not None:
                    until = changed + timedelta(seconds=row.immutable_seconds)
                    if self._clock.now() < until:
                        raise ObjectProtectedError(
                            f"bucket {bucket_id} is immutable and holds objects protected"
                            f" until {until.isoformat(timespec='seconds')}; it cannot be"
                            " deleted before then"
                        )
            used = row.used_bytes
            await s.delete(row)
        await asyncio.to_thread(self.objects.remove_bucket, bucket_id)
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
        of the upload remains when it fails (size mismatch, quota, disconnect).

        No row lock is held while the object store writes: a short transaction under
        the account's bucket row locks checks the quota against the usage plus what
        puts under way have reserved, and records this put's intent (its reservation);
        the object is then published; a second short transaction counts it and drops
        the intent. An instance that dies in between leaves the intent, and
        ``repair_intents`` recounts the bucket."""
        check_key(key)
        bucket_id = bucket.bucket_id
        # Refuse early what cannot fit, before reading it all.
        old = await asyncio.to_thread(self.objects.size_of, bucket_id, key)
        if bucket.quota_bytes and bucket.used_bytes - old + total_size > bucket.quota_bytes:
            raise _quota_error(
                bucket.used_bytes, bucket.quota_bytes, key, total_size - old, "the bucket"
            )
        async with self._sessions() as s:
            account_used, account_quota = await self._account_room(s, bucket.user_id, lock=False)
        if account_quota and account_used - old + total_size > account_quota:
            raise _quota_error(account_used, account_quota, key, total_size - old, "the account")
        pending = await asyncio.to_thread(self.objects.begin_put, bucket_id, key)
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
            delta = total_size - old
            # From here the object may land even if publishing fails (a PUT whose
            # answer is lost): the intent stays unless it is counted below.
            write_once, intent = await self._reserve(bucket, key, old, total_size)
            written = self._clock.now()
            if write_once:
                created = await asyncio.to_thread(self.objects.publish_new, pending, written)
                delta = delta if created else 0
            else:
                await asyncio.to_thread(self.objects.publish, pending, written)
            async with self._sessions() as s, s.begin():
                await s.execute(
                    update(Bucket)
                    .where(Bucket.id == bucket_id)
                    .values(used_bytes=func.greatest(0, Bucket.used_bytes + delta))
                )
                await s.execute(delete(BucketIntent).where(BucketIntent.id == intent))
        except BaseException:
            await asyncio.to_thread(pending.discard)
            raise
        return total_size

    async def _reserve(
        self, bucket: BucketRecord, key: str, old: int, total_size: int
    ) -> tuple[bool, str]:
        """Check the quotas against usage plus the reservations of puts under way and
        record this put's intent, in one short transaction holding the account's
        bucket rows; returns (whether the bucket is immutable for ``key``, intent id)."""
        delta = total_size - old
        async with self._sessions() as s, s.begin():
            account_used, account_quota = await self._account_room(s, bucket.user_id, lock=True)
            row = await self._locked(s, bucket)
            if delta > 0 and (row.quota_bytes or account_quota):
                reserved = func.coalesce(
                    func.sum(func.greatest(BucketIntent.size_bytes - BucketIntent.old_bytes, 0)),
                    0,
                )
                in_bucket = await s.scalar(
                    select(reserved).where(BucketIntent.bucket_id == bucket.bucket_id)
                )
                used = row.used_bytes + int(in_bucket or 0)
                if row.quota_bytes and used + delta > row.quota_bytes:
                    raise _quota_error(used, row.quota_bytes, key, delta, "the bucket")
                if account_quota:
                    in_account = await s.scalar(
                        select(reserved)
                        .join(Bucket, Bucket.id == BucketIntent.bucket_id)
                        .where(Bucket.user_id == bucket.user_id)
                    )
                    used = account_used + int(in_account or 0)
                    if used + delta > account_quota:
                        raise _quota_error(used, account_quota, key, delta, "the account")
            intent = str(uuid.uuid4())
            s.add(
                BucketIntent(
                    id=intent,
                    bucket_id=bucket.bucket_id,
                    key=key,
                    started_at=self._clock.now(),
                    old_bytes=old,
                    size_bytes=total_size,
                )
            )
            return bool(row.immutable_seconds) and not is_mutable(key), intent

    async def repair_intents(self, older_than: timedelta = timedelta(minutes=10)) -> int:
        """Recount the usage of buckets with puts that began over ``older_than`` ago
        and never committed (their instance died); returns how many buckets.

        Any instance may run it at any time (each start does, and the bucket upkeep
        loop): a bucket is claimed with ``FOR UPDATE SKIP LOCKED``, so a bucket
        another instance is recounting (or a put is reserving in) is left for the
        next round, and its stale intents are read again once claimed. Puts still
        under way there (fresh intents) may or may not have landed yet: their keys
        count as the size they had before (``old_bytes``), as their own commit then
        adds the difference."""
        cutoff = self._clock.now() - older_than
        async with self._sessions() as s:
            stale = list(
                await s.scalars(
                    select(BucketIntent.bucket_id)
                    .where(BucketIntent.started_at <= cutoff)
                    .distinct()
                )
            )
        repaired = 0
        for bucket_id in stale:
            async with self._sessions() as s, s.begin():
                row = await s.scalar(
                    select(Bucket).where(Bucket.id == bucket_id).with_for_update(skip_locked=True)
                )
                if row is None:
                    if await s.get(Bucket, bucket_id) is None:  # deleted: nothing to count
                        await s.execute(
                            delete(BucketIntent).where(BucketIntent.bucket_id == bucket_id)
                        )
                    continue
                intents = list(
                    await s.scalars(select(BucketIntent).where(BucketIntent.bucket_id == bucket_id))
                )
                old = [i for i in intents if i.started_at <= cutoff]
                if not old:
                    continue  # another instance recounted it first
                used = await self._count(bucket_id, [i for i in intents if i.started_at > cutoff])
                if used != row.used_bytes:
                    log.info("bucket %s: usage %d -> %d bytes", bucket_id, row.used_bytes, used)
                    row.used_bytes = used
                await s.execute(
                    delete(BucketIntent).where(BucketIntent.id.in_([i.id for i in old]))
                )
                repaired += 1
        return repaired

    async def _count(self, bucket_id: str, under_way: list[BucketIntent]) -> int:
        """What the bucket's usage must be, its row locked: the store's total, with the
        keys of puts ``under_way`` at their size before (their commit adds the rest)."""
        used = await asyncio.to_thread(self.objects.usage, bucket_id)
        for key, before in {i.key: i.old_bytes for i in under_way}.items():
            used += before - await asyncio.to_thread(self.objects.size_of, bucket_id, key)
        return max(0, used)

    async def read(
        self, bucket: BucketRecord, key: str, offset: int, length: int | None
    ) -> AsyncIterator[bytes]:
        """The object's bytes ``[offset, offset+length)`` in pieces of at most
        CHUNK_SIZE. A missing object or a bad range fails here, before any data."""
        check_key(key)
        reader = await asyncio.to_thread(
            self.objects.open_range, bucket.bucket_id, key, offset, length
        )
        return self._pieces(reader, key, reader.size)

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
        return await asyncio.to_thread(self.objects.stat, bucket.bucket_id, key)

    async def delete(self, bucket: BucketRecord, key: str, grant: str = "") -> None:
        """Idempotent: deleting a missing object succeeds. In an immutable bucket only
        ``locks/`` objects may go freely; any other needs a valid delete ``grant`` and
        an object older than the protection period, and goes to the trash."""
        check_key(key)
        async with self._sessions() as s, s.begin():
            row = await self._locked(s, bucket)
            if row.immutable_seconds and not is_mutable(key):
                await self._check_grant(bucket, grant, key)
                now = self._clock.now()
                written = await asyncio.to_thread(self.objects.written_at, bucket.bucket_id, key)
                if written is None:
                    return
                until = written + timedelta(seconds=row.immutable_seconds)
                if now < until:
                    raise ObjectProtectedError(
                        f"{key!r} is protected until {until.isoformat(timespec='seconds')}"
                        " (immutable vault); nobody can delete it before then"
                    )
                freed = await asyncio.to_thread(
                    self.objects.move_to_trash, bucket.bucket_id, key, now
                )
            else:
                freed = await asyncio.to_thread(self.objects.delete, bucket.bucket_id, key)
            row.used_bytes = max(0, row.used_bytes - freed)

    async def _check_grant(self, bucket: BucketRecord, grant: str, key: str) -> None:
        if not grant:
            raise ImmutableObjectError(
                f"{key!r} is in an immutable vault: this device's credential cannot delete it;"
                " deletes need a grant (retention started by an administrator, by the user"
                " re-entering their password, or scheduled in the policy's retention window)"
            )
        secret = await self._credential_secret()
        device = bucket.device_id or "*"
        if not grants.valid(secret, grant, bucket.bucket_id, device, self._clock.now()):
            raise DeleteGrantError(
                "the delete grant is expired or not for this vault; ask for a new one"
            )

    # ------------------------------------------------------------- immutability

    async def protected_until(self, bucket: BucketRecord, key: str) -> datetime | None:
        """Until when the object cannot be deleted; None in an ordinary bucket."""
        if not bucket.immutable_seconds or is_mutable(key):
            return None
        written = await asyncio.to_thread(self.objects.written_at, bucket.bucket_id, key)
        return None if written is None else written + timedelta(seconds=bucket.immutable_seconds)

    async def extend_protection(self, bucket: BucketRecord, key: str) -> datetime | None:
        """Protect an object still in use for a whole protection period from now (it
        never shortens a protection); returns until when, None in an ordinary bucket.
        Under the bucket's row lock, so a granted delete of the same object waits and
        then sees the new date."""
        check_key(key)
        if not bucket.immutable_seconds or is_mutable(key):
            await self.stat(bucket, key)
            return None
        async with self._sessions() as s, s.begin():
            await self._locked(s, bucket)
            now = self._clock.now()
            found = await asyncio.to_thread(self.objects.restamp, bucket.bucket_id, key, now)
        if not found:
            raise ObjectNotFoundError(f"object {key!r} does not exist")
        return await self.protected_until(bucket, key)

    async def issue_grant(self, bucket_id: str, *, device_id: str = "*") -> grants.Grant:
        """A delete grant for ``bucket_id`` (for one device, or ``*`` for any device of
        its account); the caller checked who may have it."""
        await self._row(bucket_id)
        return grants.issue(
            await self._credential_secret(), bucket_id, device_id, self._clock.now()
        )

    async def issue_scheduled_grant(
        self, bucket_id: str, *, user_id: str, device_id: str
    ) -> tuple[grants.Grant, str]:
        """A delete grant for a scheduled retention of the user's immutable bucket,
        inside the retention window of the user's policy and ending with it; returns
        the grant and the policy's name."""
        record = await self._row(bucket_id)
        if record.user_id != user_id:
            raise NotFoundError(f"your account has no bucket {bucket_id!r}")
        if not record.immutable_seconds:
            raise InvalidRequestError(f"bucket {bucket_id} is not immutable: deletes need no grant")
        async with self._sessions() as s:
            user = await s.get(User, user_id)
            if user is None:
                raise NotFoundError("the account no longer exists")
            policy = await effective_policy(s, user)
        now = self._clock.now()
        closes = retention_window.window_end(policy.body, now) if policy else None
        if policy is None or closes is None:
            raise DeleteGrantError(
                "scheduled retention of an immutable vault may delete only inside the"
                " retention window of your account's policy, and it has none open now; run"
                " retention with your password, or ask an administrator"
            )
        seconds = min(grants.GRANT_SECONDS, int((closes - now).total_seconds()))
        grant = grants.issue(await self._credential_secret(), bucket_id, device_id, now, seconds)
        return grant, policy.name

    async def _row(self, bucket_id: str) -> BucketRecord:
        try:
            uuid.UUID(bucket_id)
        except ValueError:
            raise NotFoundError(f"no bucket {bucket_id!r}") from None
        async with self._sessions() as s:
            row = await s.get(Bucket, bucket_id)
            if row is None:
                raise NotFoundError(f"no bucket {bucket_id!r}")
            return _record(row)

    async def trash_entries(self, bucket_id: str) -> list[TrashEntry]:
        await self._row(bucket_id)
        return await asyncio.to_thread(self.objects.trash_entries, bucket_id)

    async def undelete(self, bucket_id: str, keys: list[str], *, every: bool = False) -> list[str]:
        """Put objects back from the trash (never over an existing object); returns
        the keys restored."""
        await self._row(bucket_id)
        if every:
            keys = sorted({e.key for e in await self.trash_entries(bucket_id)})
        restored: list[str] = []
        for key in keys:
            check_key(key)
            async with self._sessions() as s, s.begin():
                row = await s.get(Bucket, bucket_id, with_for_update=True)
                if row is None:
                    raise NotFoundError(f"no bucket {bucket_id!r}")
                size = await asyncio.to_thread(self.objects.restore, bucket_id, key)
                if size or await asyncio.to_thread(self.objects.size_of, bucket_id, key):
                    restored.append(key)
                row.used_bytes += size
        return restored

    async def purge_trash(self) -> int:
        """Remove for good what immutable buckets deleted more than a protection
        period ago; returns how many objects."""
        removed = 0
        now = self._clock.now()
        for record in await self.list_buckets():
            if not record.immutable_seconds:
                continue
            cutoff = now - timedelta(seconds=record.immutable_seconds)
            removed += await asyncio.to_thread(self.objects.purge_trash, record.bucket_id, cutoff)
        return removed

    async def purge_trash_forever(self, every_seconds: float = 3600) -> None:
        """Also recounts buckets left with stale intents (``repair_intents``), at
        start and every tenth of the period: all an instance recounts on its own, so
        a rollout restarting many instances does not list the whole store each."""
        rounds = 0
        while True:
            try:
                if rounds % 10 == 0:
                    removed = await self.purge_trash()
                    if removed:
                        log.info("trash: %d objects past their protection removed", removed)
                await self.repair_intents()
            except Exception:  # the database may be briefly away; try next round
                log.exception("bucket upkeep failed")
            rounds += 1
            await asyncio.sleep(every_seconds / 10)

    async def list_objects(self, bucket: BucketRecord, prefix: str) -> list[ObjectEntry]:
        check_prefix(prefix)
        return await asyncio.to_thread(lambda: list(self.objects.list(bucket.bucket_id, prefix)))

    # ------------------------------------------------------------- upkeep

    async def reconcile(self) -> None:
        """Recount every bucket's usage from its objects (puts under way counted as
        their commit will). Not run at start: it lists the whole store, and the
        intents of puts an instance died in already mark the buckets that need it
        (``repair_intents``); this is for a count that drifted some other way."""
        for record in await self.list_buckets():
            try:
                async with self._sessions() as s, s.begin():
                    row = await s.scalar(
                        select(Bucket).where(Bucket.id == record.bucket_id).with_for_update()
                    )
                    if row is None:
                        continue
                    under_way = await s.scalars(
                        select(BucketIntent).where(BucketIntent.bucket_id == row.id)
                    )
                    used = await self._count(row.id, list(under_way))
                    if used != row.used_bytes:
                        log.info("bucket %s: usage %d -> %d bytes", row.id, row.used_bytes, used)
                        row.used_bytes = used
            except Exception:  # one unreadable bucket must not stop the others
                log.exception("could not recount bucket %s", record.bucket_id)
