"""Read-only figures for the web console's dashboard and server page: jobs by status
over a period, devices whose latest backup failed or that are overdue, the running
server instances, the database and its schema revision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text, true
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from comet.server.clock import Clock
from comet.server.notify.events import ERROR_STATUSES, overdue_devices
from comet.server.routing import listener_name
from comet.server.store.jobs import JobClassification, JobStatus
from comet.server.store.models import Device, Job, User


@dataclass(frozen=True)
class AttentionDevice:
    """A device whose latest backup failed, or that is overdue."""

    device_id: str
    device_name: str
    username: str
    reason: str  # "failed: ERROR" / "overdue"
    since: datetime | None  # when its latest backup ended, or its last good one


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

    async def needing_attention(self) -> list[AttentionDevice]:
        """Devices whose latest backup ended badly, then overdue devices."""
        # Each device's latest backup through the (device_id, started_at) index: one
        # short probe per device, not a sort of the whole history.
        latest = (
            select(Job.status, Job.ended_at)
            .where(
                Job.device_id == Device.id,
                Job.classification == int(JobClassification.BACKUP),
            )
            .order_by(Job.started_at.desc())
            .limit(1)
            .lateral()
        )
        async with self._sessions() as s:
            rows = (
                await s.execute(
                    select(
                        Device.id, Device.name, User.username, latest.c.status, latest.c.ended_at
                    )
                    .select_from(Device)
                    .join(latest, true())
                    .join(User, User.id == Device.user_id)
                    .where(
                        Device.revoked_at.is_(None),
                        latest.c.status.in_([int(x) for x in ERROR_STATUSES]),
                    )
                    .order_by(User.username, Device.name)
                )
            ).all()
            overdue = await overdue_devices(s, self._clock.now() - self._overdue_after)
        out = [
            AttentionDevice(d, name, user, f"failed: {JobStatus(status).name}", ended)
            for d, name, user, status, ended in rows
        ]
        failed = {a.device_id for a in out}
        for device in overdue:
            if device["device_id"] in failed:
                continue
            last = device["last_good_backup"]
            out.append(
                AttentionDevice(
                    device["device_id"],
                    device["device_name"],
                    device["user"],
                    "overdue",
                    datetime.fromisoformat(last) if last else None,
                )
            )
        return out

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
