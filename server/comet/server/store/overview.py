"""Read-only figures for the web console's dashboard and server page: jobs by status
over a period, devices whose latest backup failed or that are overdue, the running
server instances, the database and its schema revision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BindParameter, bindparam, case, false, func, select, text, true, union_all
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from comet.server.clock import Clock
from comet.server.notify.events import ERROR_STATUSES, overdue_clause
from comet.server.routing import listener_name
from comet.server.store.jobs import JobStatus
from comet.server.store.models import Device, Job, User

# The dashboard lists this many devices needing attention (and says how many more).
ATTENTION_SHOWN = 100


@dataclass(frozen=True)
class AttentionDevice:
    """A device whose latest backup failed, or that is overdue."""

    device_id: str
    device_name: str
    username: str
    reason: str  # "failed: ERROR" / "overdue"
    since: datetime | None  # when its latest backup ended, or its last good one


@dataclass(frozen=True)
class Attention:
    """The first devices needing attention, and how many need it in all."""

    devices: list[AttentionDevice]
    total: int


@dataclass(frozen=True)
class ServerInstance:
    instance_id: str
    connected_devices: int
    this_instance: bool


@dataclass(frozen=True)
class DatabaseFacts:
    version: str
    schema_revision: str


class OverviewStore:
    def __init__(self, engine: AsyncEngine, clock: Clock, *, overdue_after: timedelta) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._overdue_after = overdue_after

    async def jobs_by_status(self, since: timedelta) -> dict[JobStatus, int]:
        """How many jobs started in the last ``since``, per status."""
        start = self._clock.now() - since
        async with self._sessions() as s:
            rows = await s.execute(
                select(Job.status, func.count()).where(Job.started_at >= start).group_by(Job.status)
            )
            return {JobStatus(status): int(n) for status, n in rows.all()}

    async def needing_attention(self, *, limit: int = ATTENTION_SHOWN) -> Attention:
        """Devices whose latest backup ended badly (the latest failure first), then
        overdue devices (the longest overdue first), at most ``limit`` of them, and
        how many there are in all. Read from each device's backup summary (migration
        0017): none over jobs or profiles; owners' names are joined to the ``limit``
        shown only."""
        # Two short reads on their own partial indexes (migration 0019): the first
        # failed devices, the first overdue ones not failed; merged in the order of
        # the list.
        codes: BindParameter[list[int]] = bindparam(
            "error_codes", sorted(int(x) for x in ERROR_STATUSES), expanding=True,
            literal_execute=True,  # inline: the partial index's predicate must match
        )  # fmt: skip
        failed_now = Device.last_backup_status.in_(codes)
        failed = func.coalesce(failed_now, false())
        overdue = overdue_clause(self._clock.now() - self._overdue_after)
        good_or_registered = func.coalesce(Device.last_good_backup_at, Device.registered_at)
        columns = (
            Device.id, Device.name, Device.user_id, Device.last_backup_status,
            Device.last_backup_ended_at, Device.last_good_backup_at,
            good_or_registered.label("good_or_registered"),
        )  # fmt: skip
        failed_first = (
            select(*columns, true().label("failed"))
            .where(Device.revoked_at.is_(None), failed_now)
            .order_by(
                Device.last_backup_ended_at.desc().nulls_last(), good_or_registered, Device.id
            )
            .limit(limit)
            .subquery()
        )
        overdue_first = (
            select(*columns, false().label("failed"))
            .where(overdue, ~failed)
            .order_by(good_or_registered, Device.id)
            .limit(limit)
            .subquery()
        )
        first = union_all(select(failed_first), select(overdue_first)).subquery()
        async with self._sessions() as s:
            # Failed, plus overdue and not failed: each counted on its partial index.
            total = await s.scalar(
                select(
                    select(func.count()).where(Device.revoked_at.is_(None), failed_now)
                    .scalar_subquery()
                    + select(func.count()).where(overdue, ~failed).scalar_subquery()
                )
            )  # fmt: skip
            rows = (
                await s.execute(
                    select(
                        first.c.id,
                        first.c.name,
                        User.username,
                        first.c.failed,
                        first.c.last_backup_status,
                        first.c.last_backup_ended_at,
                        first.c.last_good_backup_at,
                    )
                    .join(User, User.id == first.c.user_id)
                    .order_by(
                        first.c.failed.desc(),
                        case((first.c.failed, first.c.last_backup_ended_at)).desc().nulls_last(),
                        first.c.good_or_registered,
                        first.c.id,
                    )
                    .limit(limit)
                )
            ).all()
        devices = [
            AttentionDevice(d, name, user, f"failed: {JobStatus(status).name}", ended)
            if is_failed and status is not None
            else AttentionDevice(d, name, user, "overdue", good)
            for d, name, user, is_failed, status, ended, good in rows
        ]
        return Attention(devices, int(total or 0))

    async def instances(self, this_instance: str) -> list[ServerInstance]:
        """Running server instances (their LISTEN connections are in
        ``pg_stat_activity``) and the live connections each holds."""
        prefix = listener_name("")
        async with self._sessions() as s:
            names = await s.scalars(
                text(
                    "SELECT DISTINCT application_name FROM pg_stat_activity "
                    "WHERE application_name LIKE :p"
                ).bindparams(p=prefix + "%")
            )
            running = {name.removeprefix(prefix) for name in names}
            counts = dict(
                (
                    await s.execute(
                        select(Device.connected_instance, func.count())
                        .where(Device.connected_instance.is_not(None))
                        .group_by(Device.connected_instance)
                    )
                ).all()
            )
        running.add(this_instance)
        return [
            ServerInstance(i, int(counts.get(i, 0)), i == this_instance) for i in sorted(running)
        ]

    async def database(self) -> DatabaseFacts:
        async with self._sessions() as s:
            version = await s.scalar(text("SHOW server_version"))
            revision = await s.scalar(text("SELECT version_num FROM alembic_version"))
        return DatabaseFacts(str(version), str(revision or ""))
