"""Finds scheduled runs that did not happen and records them as MISSED jobs.

For every enabled schedule of any kind (ONCE, DAILY, HOURLY, WEEKLY, MONTHLY,
PERIODIC), each due time (see
``comet.server.schedule_times``, in the owning device's timezone) older than the
grace period is checked: if the device started no job for that item x vault between
``EARLY`` before the due time and the grace period (plus the schedule's random delay)
after it, a MISSED (7004) job is recorded. Only due times after the schedule (and the
item and device) existed and within the look-back window are considered; the job id
derives from the schedule and due time, so sweeps are idempotent and may run on
several server instances."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from comet.server.clock import Clock
from comet.server.schedule_times import CHECKED, ScheduleTimes, zone
from comet.server.store import profile_document
from comet.server.store.jobs import JobStore
from comet.server.store.models import Device, User

# A run may start a little before its due time (clock skew between device and server).
EARLY = timedelta(minutes=5)


@dataclass(frozen=True)
class MissedRunPolicy:
    grace: timedelta = timedelta(minutes=30)
    lookback: timedelta = timedelta(days=1)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class MissedRunFinder:
    def __init__(
        self, engine: AsyncEngine, clock: Clock, jobs: JobStore, policy: MissedRunPolicy
    ) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._jobs = jobs
        self._policy = policy

    async def sweep(self) -> list[str]:
        """Records the missed runs found now; returns the new MISSED job ids."""
        now = self._clock.now()
        async with self._sessions() as s:
            users = (await s.execute(select(User.id, User.profile))).all()
            devices = {d.id: d for d in await s.scalars(select(Device))}
        created: list[str] = []
        for user_id, stored in users:
            doc = profile_document.normalised(stored)
            items = {i.get("item_id"): i for i in doc["items"]}
            for schedule in doc["schedules"]:
                if not schedule.get("enabled") or schedule.get("frequency") not in CHECKED:
                    continue
                item = items.get(schedule.get("item_id"))
                device = devices.get(str(item.get("owner_device_id", ""))) if item else None
                if item is None or device is None or device.revoked_at is not None:
                    continue
                if device.user_id != user_id:
                    continue
                created += await self._check(user_id, device, item, schedule, doc, now)
        return created

    async def _check(
        self,
        user_id: str,
        device: Device,
        item: dict[str, object],
        schedule: dict[str, object],
        doc: dict[str, object],
        now: datetime,
    ) -> list[str]:
        delay = timedelta(seconds=int(str(schedule.get("random_delay_seconds", 0))))
        late = self._policy.grace + delay
        start = max(
            [now - self._policy.lookback, device.registered_at]
            + [
                t
                for t in (
                    _parse_time(schedule.get("created_at")),
                    _parse_time(item.get("created_at")),
                )
                if t is not None
            ]
        )
        end = now - late
        if end <= start:
            return []
        settings = doc.get("settings")
        account_tz = settings.get("timezone", "") if isinstance(settings, dict) else ""
        tz = zone(device.timezone or str(account_tz))
        due = ScheduleTimes.from_json(dict(schedule)).runs_between(tz, start, end)
        if not due:
            return []
        item_id = str(item.get("item_id", ""))
        vault_id = str(schedule.get("vault_id", ""))
        started = await self._jobs.started_between(
            device_id=device.id,
            item_id=item_id,
            vault_id=vault_id,
            start=due[0] - EARLY,
            end=due[-1] + late,
        )
        created = []
        for when in due:
            if any(when - EARLY <= t <= when + late for t in started):
                continue
            job_id = await self._jobs.record_missed(
                user_id=user_id,
                device_id=device.id,
                item_id=item_id,
                vault_id=vault_id,
                schedule_id=str(schedule.get("schedule_id", "")),
                expected=when,
            )
            if job_id is not None:
                created.append(job_id)
        return created
