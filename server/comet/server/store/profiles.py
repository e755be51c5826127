"""User profiles: read and written whole, with optimistic concurrency.

The document format and change rules live in ``profile_document``; this module adds
the database: row locks, the version check, the effective policy, device OSes and
sealing of secrets with the server key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comet.server.clock import Clock
from comet.server.errors import ConflictError, NotFoundError
from comet.server.secret_box import SecretBox
from comet.server.store import profile_document
from comet.server.store.models import Device, User
from comet.server.store.policies import PolicyRecord, effective_policy

STALE_WRITE = "the profile changed since you read it; reload and try again"


@dataclass(frozen=True)
class ProfileView:
    """A profile as one reader sees it. ``document`` holds settings, items, vaults,
    schedules and recovery_enabled (see ``profile_document``)."""

    username: str
    version: int
    document: dict[str, Any]
    policy: PolicyRecord | None


async def mark_scheduled(s: AsyncSession, user_id: str, profile: dict[str, Any] | None) -> None:
    """Sets ``backup_scheduled`` of the account's devices from its profile (the
    dashboard's overdue devices read it instead of every profile)."""
    scheduled = profile_document.scheduled_devices(profile)
    now_scheduled = Device.id.in_(scheduled)
    await s.execute(
        update(Device)
        .where(Device.user_id == user_id, Device.backup_scheduled.is_distinct_from(now_scheduled))
        .values(backup_scheduled=now_scheduled)
    )


class ProfileStore:
    def __init__(self, engine: AsyncEngine, clock: Clock, box: SecretBox) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._box = box

    async def get(self, user_id: str, *, reveal_secrets: bool) -> ProfileView:
        """The effective profile. Secrets are decrypted only with ``reveal_secrets``
        (the account's own devices); otherwise they are left out."""
        async with self._sessions() as s:
            user = await self._user(s, user_id, lock=False)
            return await self._view(s, user, reveal_secrets=reveal_secrets)

    async def put(
        self, user_id: str, *, device_id: str, version: int, document: dict[str, Any]
    ) -> ProfileView:
        """Replaces the profile if ``version`` is the stored one (ConflictError if not;
        nothing is merged). Items and policy rules are enforced by
        ``profile_document.merge``; new items are owned by ``device_id``."""
        async with self._sessions() as s, s.begin():
            user = await self._user(s, user_id, lock=True)
            if version != user.profile_version:
                raise ConflictError(STALE_WRITE)
            policy = await effective_policy(s, user)
            stored = profile_document.open_secrets(
                profile_document.normalised(user.profile), self._box, user.id
            )
            merged = profile_document.merge(
                stored,
                document,
                device_id=device_id,
                policy=policy,
                device_os=await self._device_os(s, user.id),
                now=self._clock.now(),
            )
            user.profile = profile_document.seal_secrets(merged, self._box, user.id)
            user.profile_version += 1
            await s.flush()
            await mark_scheduled(s, user.id, user.profile)
            return await self._view(s, user, reveal_secrets=True, policy=policy)

    async def add_policy_defaults(self, user_id: str, device_id: str) -> None:
        """Gives a newly registered device the default items and schedules of the
        account's effective policy."""
        async with self._sessions() as s, s.begin():
            user = await self._user(s, user_id, lock=True)
            policy = await effective_policy(s, user)
            if policy is None or not policy.default_items:
                return
            user.profile = profile_document.with_policy_defaults(
                user.profile, policy, device_id=device_id, now=self._clock.now()
            )
            user.profile_version += 1
            await mark_scheduled(s, user.id, user.profile)

    async def _user(self, s: AsyncSession, user_id: str, *, lock: bool) -> User:
        user = await s.get(User, user_id, with_for_update=lock)
        if user is None:
            raise NotFoundError("no such user")
        return user

    async def _device_os(self, s: AsyncSession, user_id: str) -> dict[str, str]:
        rows = await s.execute(select(Device.id, Device.os).where(Device.user_id == user_id))
        return {device_id: os_name for device_id, os_name in rows.all()}

    async def _view(
        self,
        s: AsyncSession,
        user: User,
        *,
        reveal_secrets: bool,
        policy: PolicyRecord | None = None,
    ) -> ProfileView:
        policy = policy or await effective_policy(s, user)
        doc = profile_document.normalised(user.profile)
        if reveal_secrets:
            doc = profile_document.open_secrets(doc, self._box, user.id)
        else:
            doc = profile_document.redact_secrets(doc)
        doc = profile_document.effective(doc, policy, await self._device_os(s, user.id))
        return ProfileView(user.username, user.profile_version, doc, policy)
