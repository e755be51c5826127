"""Users and devices a page at a time, searched and filtered in the database, for the
web console and HTTP API (lists stay fast with tens of thousands of rows)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, or_, select, union
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import aliased

from comet.server.errors import NotFoundError
from comet.server.store.accounts import (
    AccountStore,
    DeviceRecord,
    Role,
    UserRecord,
    user_record,
)
from comet.server.store.models import Device, User


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def from_nearer_end(offset: int, limit: int, total: int) -> tuple[int, int, bool]:
    """(offset, limit, backwards) reading the same rows from the nearer end of the
    order: a page past the middle (the last page of 20,000 devices) skips the rows
    after it, read in reverse, instead of every row before it."""
    if offset >= total or offset + limit // 2 <= total // 2:
        return offset, limit, False
    after = total - offset - limit
    return max(after, 0), limit + min(after, 0), True


class Directory:
    def __init__(self, engine: AsyncEngine, accounts: AccountStore) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._accounts = accounts

    async def users(
        self, *, search: str = "", offset: int = 0, limit: int = 50
    ) -> tuple[list[UserRecord], int]:
        """Users by name (``search`` anywhere in it, case-insensitive) and how many
        match in all."""
        where: list[ColumnElement[bool]] = []
        if search:
            where.append(User.username.ilike(_like(search), escape="\\"))
        return await self._users(*where, offset=offset, limit=limit)

    async def admins(self, *, limit: int = 500) -> list[UserRecord]:
        """The administrators (every role but USER), by name."""
        admins, _ = await self._users(User.role != int(Role.USER), offset=0, limit=limit)
        return admins

    async def _users(
        self, *where: ColumnElement[bool], offset: int, limit: int
    ) -> tuple[list[UserRecord], int]:
        async with self._sessions() as s:
            total = int(await s.scalar(select(func.count()).select_from(User).where(*where)) or 0)
            skip, take, backwards = from_nearer_end(offset, limit, total)
            order = User.username.desc() if backwards else User.username
            users = list(
                await s.scalars(select(User).where(*where).order_by(order).offset(skip).limit(take))
            )
            if backwards:
                users.reverse()
            # Devices of this page's users only (not a count over every device).
            counts = dict(
                (
                    await s.execute(
                        select(Device.user_id, func.count())
                        .where(
                            Device.user_id.in_([u.id for u in users]),
                            Device.revoked_at.is_(None),
                        )
                        .group_by(Device.user_id)
                    )
                ).all()
            )
        return [user_record(u, int(counts.get(u.id, 0))) for u in users], total

    async def user(self, username: str) -> UserRecord:
        """One user by name; NotFoundError if there is none."""
        users, _ = await self._users(User.username == username, offset=0, limit=1)
        if not users:
            raise NotFoundError(f"no user named {username!r}")
        return users[0]

    async def devices(
        self,
        *,
        search: str = "",
        online: bool | None = None,
        user_id: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[DeviceRecord], int]:
        """Devices in order of registration: ``search`` in the device's name, its
        owner's name or its id; ``online`` True/False filters by state."""
        where: list[ColumnElement[bool]] = []
        if search:
            # Each arm on its own (trigram) index, migration 0019; one OR over the
            # join would read every device and user.
            pattern = _like(search)
            inner = aliased(Device)  # not correlated with the outer query's devices
            matching = union(
                select(inner.id).where(
                    or_(
                        inner.name.ilike(pattern, escape="\\"),
                        inner.id.ilike(pattern, escape="\\"),
                    )
                ),
                select(inner.id)
                .join(User, User.id == inner.user_id)
                .where(User.username.ilike(pattern, escape="\\")),
            )
            where.append(Device.id.in_(matching))
        if online is not None:
            clause = self._accounts.online_clause()
            where.append(clause if online else ~clause)
        if user_id is not None:
            where.append(Device.user_id == user_id)
        # Counted and paged on devices alone (the registration index, from its nearer
        # end); owners' names are joined to the page's rows only.
        async with self._sessions() as s:
            total = int(await s.scalar(select(func.count()).select_from(Device).where(*where)) or 0)
            skip, take, backwards = from_nearer_end(offset, limit, total)
            order = (
                (Device.registered_at.desc(), Device.id.desc())
                if backwards
                else (Device.registered_at, Device.id)
            )
            page = select(Device).where(*where).order_by(*order).offset(skip).limit(take)
            device = aliased(Device, page.subquery())
            rows = await s.execute(
                select(device, User.username)
                .join(User, User.id == device.user_id)
                .order_by(device.registered_at, device.id)
            )
            records = [self._accounts.device_record(d, name) for d, name in rows.all()]
        return records, total

    async def device_counts(self) -> tuple[int, int]:
        """Unrevoked devices online and offline."""
        online = self._accounts.online_clause()
        async with self._sessions() as s:
            row = (
                await s.execute(
                    select(
                        func.count().filter(online),
                        func.count().filter(~online),
                    ).where(Device.revoked_at.is_(None))
                )
            ).one()
        return int(row[0]), int(row[1])

    async def users_per_policy(self) -> dict[str, int]:
        """How many users each policy is assigned to."""
        async with self._sessions() as s:
            rows = await s.execute(
                select(User.policy_id, func.count())
                .where(User.policy_id.is_not(None))
                .group_by(User.policy_id)
            )
            return {str(policy): int(n) for policy, n in rows.all()}
