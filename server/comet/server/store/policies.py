"""Policies: admin-defined defaults and restrictions, and which one applies to whom.

A policy's body is a JSON document with the Policy message fields (as protobuf JSON
with the proto field names and integer enums) apart from the id, name, default flag
and version, which are columns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comet.server.clock import Clock
from comet.server.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
)
from comet.server.store.models import Policy, User

FLAG_RULES = (
    "prevent_new_item",
    "prevent_edit_item",
    "prevent_delete_item",
    "prevent_edit_vault",
    "prevent_delete_vault",
    "prevent_delete_snapshot",
    "prevent_change_password",
    "prevent_change_email",
)


@dataclass(frozen=True)
class PolicyRecord:
    policy_id: str
    name: str
    body: dict[str, Any] = field(default_factory=dict)
    is_default: bool = False
    version: int = 0

    def flag(self, name: str) -> bool:
        return bool(self.body.get("flags", {}).get(name, False))

    @property
    def exclusions(self) -> list[dict[str, Any]]:
        return list(self.body.get("exclusions", []))

    @property
    def enforced_retention(self) -> dict[str, Any] | None:
        """The retention that replaces every vault's and item's own, if enforced."""
        if self.body.get("enforce_retention") and "default_retention" in self.body:
            return dict(self.body["default_retention"])
        return None

    @property
    def default_items(self) -> list[dict[str, Any]]:
        return list(self.body.get("default_items", []))

    @property
    def default_schedules(self) -> list[dict[str, Any]]:
        return list(self.body.get("default_schedules", []))


def _record(row: Policy) -> PolicyRecord:
    return PolicyRecord(row.id, row.name, dict(row.body), row.is_default, row.version)


async def effective_policy(s: AsyncSession, user: User) -> PolicyRecord | None:
    """The user's assigned policy, else the default policy, else None."""
    row = None
    if user.policy_id is not None:
        row = await s.get(Policy, user.policy_id)
    if row is None:
        row = await s.scalar(select(Policy).where(Policy.is_default.is_(True)))
    return _record(row) if row is not None else None


class PolicyStore:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    async def put(self, policy: PolicyRecord) -> PolicyRecord:
        """Creates the policy (empty id) or replaces it whole. A non-zero version must
        match the stored one (ConflictError otherwise). Making a policy the default
        takes that role from any other."""
        name = policy.name.strip()
        if not name:
            raise InvalidRequestError("a policy needs a name")
        async with self._sessions() as s, s.begin():
            if policy.policy_id:
                row = await s.get(Policy, policy.policy_id, with_for_update=True)
                if row is None:
                    raise NotFoundError(f"no policy {policy.policy_id!r}")
                if policy.version and policy.version != row.version:
                    raise ConflictError(
                        f"policy {row.name!r} changed since you read it (version "
                        f"{row.version}, yours {policy.version}); reload and try again"
                    )
                row.version += 1
            else:
                row = Policy(id=str(uuid.uuid4()), version=1)
            if policy.is_default:
                await s.execute(
                    update(Policy)
                    .where(Policy.is_default.is_(True), Policy.id != row.id)
                    .values(is_default=False)
                )
            row.name = name
            row.body = policy.body
            row.is_default = policy.is_default
            row.updated_at = self._clock.now()
            s.add(row)
            try:
                await s.flush()
            except IntegrityError as e:
                raise AlreadyExistsError(f"a policy named {name!r} already exists") from e
            return _record(row)

    async def get(self, policy_id: str) -> PolicyRecord:
        async with self._sessions() as s:
            row = await s.get(Policy, policy_id)
        if row is None:
            raise NotFoundError(f"no policy {policy_id!r}")
        return _record(row)

    async def all(self) -> list[PolicyRecord]:
        async with self._sessions() as s:
            rows = await s.scalars(select(Policy).order_by(Policy.name))
            return [_record(r) for r in rows]

    async def delete(self, policy_id: str) -> PolicyRecord:
        """Deletes the policy; its users fall back to the default policy."""
        async with self._sessions() as s, s.begin():
            row = await s.get(Policy, policy_id)
            if row is None:
                raise NotFoundError(f"no policy {policy_id!r}")
            record = _record(row)
            await s.delete(row)
        return record

    async def assign(self, username: str, policy_id: str | None) -> None:
        """Assigns a policy to a user; None unassigns (the default policy applies)."""
        async with self._sessions() as s, s.begin():
            if policy_id is not None and await s.get(Policy, policy_id) is None:
                raise NotFoundError(f"no policy {policy_id!r}")
            result = await s.execute(
                update(User).where(User.username == username).values(policy_id=policy_id)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise NotFoundError(f"no user named {username!r}")

    async def for_user(self, user_id: str) -> PolicyRecord | None:
        async with self._sessions() as s:
            user = await s.get(User, user_id)
            if user is None:
                raise NotFoundError("no such user")
            return await effective_policy(s, user)
