"""Administrators' API keys for the HTTP API: created with a role, listed, revoked,
and resolved to a ``Principal`` on each request. Only a hash of a key is stored."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from comet.server import authorization, passwords, validation
from comet.server.clock import Clock
from comet.server.errors import (
    NotFoundError,
    PermissionDeniedError,
    UnknownCredentialError,
)
from comet.server.store.accounts import Principal, Role
from comet.server.store.models import ApiKey, User

# Keys look like "cmk_<random>": the prefix tells them apart from session tokens.
KEY_PREFIX = "cmk_"
SHOWN_PREFIX = 12
LAST_USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    owner: str
    name: str
    role: Role
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


@dataclass(frozen=True)
class NewApiKey:
    record: ApiKeyRecord
    key: str  # shown once; the server keeps only its hash


def is_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


class ApiKeyStore:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    async def create(self, owner: Principal, *, name: str, role: Role) -> NewApiKey:
        """A new key of ``owner`` acting as ``role``; refused when the owner could not
        act with that role itself (``authorization.may_grant_key_role``)."""
        validation.text(name, field="the key name", max_len=validation.NAME_MAX, required=True)
        if not authorization.may_grant_key_role(owner.role, role):
            raise PermissionDeniedError(
                f"{owner.username!r} may not create a key with the role {role.name.lower()}: "
                "a key can act only with its owner's role (a super admin's with any)"
            )
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKey(
            id=str(uuid.uuid4()),
            user_id=owner.user_id,
            name=name,
            role=int(role),
            key_hash=passwords.token_hash(key),
            prefix=key[:SHOWN_PREFIX],
            created_at=self._clock.now(),
        )
        async with self._sessions() as s, s.begin():
            s.add(row)
        return NewApiKey(_record(row, owner.username), key)

    async def list(self, owner: Principal) -> list[ApiKeyRecord]:
        """The owner's keys, newest first (revoked ones too)."""
        async with self._sessions() as s:
            rows = await s.scalars(
                select(ApiKey)
                .where(ApiKey.user_id == owner.user_id)
                .order_by(ApiKey.created_at.desc())
            )
            return [_record(r, owner.username) for r in rows]

    async def revoke(self, owner: Principal, key_id: str) -> ApiKeyRecord:
        """Revokes one of the owner's keys; NotFoundError for someone else's."""
        validation.text(key_id, field="the key id", max_len=validation.DEVICE_ID_MAX)
        async with self._sessions() as s, s.begin():
            row = await s.scalar(
                select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == owner.user_id)
            )
            if row is None:
                raise NotFoundError(f"no API key {key_id!r} of yours")
            if row.revoked_at is None:
                row.revoked_at = self._clock.now()
        return _record(row, owner.username)

    async def authenticate(self, key: str) -> Principal:
        """The administrator a key acts for, with the key's role. A revoked key, or
        one whose owner may no longer grant its role, is refused."""
        if len(key) > validation.TOKEN_MAX:
            raise UnknownCredentialError("unknown API key")
        now = self._clock.now()
        async with self._sessions() as s, s.begin():
            row = (
                await s.execute(
                    select(ApiKey, User)
                    .join(User, User.id == ApiKey.user_id)
                    .where(ApiKey.key_hash == passwords.token_hash(key))
                )
            ).first()
            if row is None or row[0].revoked_at is not None:
                raise UnknownCredentialError("unknown or revoked API key")
            api_key, user = row
            role = Role(api_key.role)
            if not authorization.may_grant_key_role(Role(user.role), role):
                raise UnknownCredentialError("the key's owner no longer holds its role")
            last = api_key.last_used_at
            if last is None or now - last > LAST_USED_EVERY:  # not a write per request
                await s.execute(
                    update(ApiKey).where(ApiKey.id == api_key.id).values(last_used_at=now)
                )
        return Principal(user.id, user.username, role, admin_session=True)


def _record(row: ApiKey, owner: str) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row.id,
        owner=owner,
        name=row.name,
        role=Role(row.role),
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked=row.revoked_at is not None,
    )
