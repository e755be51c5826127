"""Runs the profile's schedules for this device's Protected Items, whether or not an
app is open: asks the scheduler what is due, starts those jobs, records missed runs,
and sleeps until the next planned run or a profile change."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from comet.agent.convert import retention_rules, schedule_from_proto
from comet.agent.errors import AgentError
from comet.agent.jobs.codes import Classification, Severity, Status
from comet.agent.jobs.maintenance_job import local_tz
from comet.agent.jobs.record import JobRecord, LogEntry
from comet.agent.maintenance.retention import RetentionMode
from comet.agent.operations import Operations
from comet.agent.scheduler import Scheduler, ScheduleSpec, Trigger, TriggerKind
from comet.agent.scheduler.scheduler import DEFAULT_GRACE

log = logging.getLogger(__name__)

_STATE_KEY = "schedule_last_run"
MAX_SLEEP = 60.0  # re-check at least this often (clock changes, suspend)


class ScheduleDriver:
    def __init__(
        self,
        ops: Operations,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        grace: timedelta = DEFAULT_GRACE,
    ) -> None:
        self._ops = ops
        self._now = now
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        # The profile's schedules arrive with the first update; the saved last-run
        # times wait in the scheduler until then.
        self._scheduler = Scheduler([], local_tz(), self._load_last_run(), grace=grace)
        self._last_retention: dict[str, float] = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def profile_changed(self) -> None:
        self._wake.set()

    def next_run(self) -> datetime | None:
        """The earliest planned run or retry of this device's schedules (UTC)."""
        return self._scheduler.next_wakeup(self._now())

    # ------------------------------------------------------------ loop

    def _specs(self) -> list[ScheduleSpec]:
        login = self._ops.state.load_login()
        profile = self._ops.profile.cached()
        own = {i.item_id for i in profile.items if i.owner_device_id == login.device_id}
        specs = [schedule_from_proto(s) for s in profile.schedules if s.item_id in own]
        return [s for s in specs if s is not None]

    async def _run(self) -> None:
        booting = True
        wall, mono = time.time(), time.monotonic()
        while True:
            # A wall clock that ran ahead of the monotonic one means a suspend.
            resumed = (time.time() - wall) - (time.monotonic() - mono) > 120
            wall, mono = time.time(), time.monotonic()
            try:
                if self._ops.state.load_login().logged_in:
                    now = self._now()
                    self._scheduler.update(self._specs(), now=now)
                    for trigger in self._scheduler.due(now, booting=booting, resumed=resumed):
                        await self._fire(trigger)
                    booting = False
                    self._save_last_run()
            except Exception:  # the loop must survive anything one schedule does
                log.exception("scheduler")
            self._wake.clear()
            wakeup = self._scheduler.next_wakeup(self._now())
            delay = MAX_SLEEP
            if wakeup is not None:
                delay = min(MAX_SLEEP, max(0.05, (wakeup - self._now()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _fire(self, trigger: Trigger) -> None:
        self._scheduler.mark_handled(trigger.schedule_id, trigger.planned)
        if trigger.kind is TriggerKind.MISSED:
            self._record_missed(trigger)
            return
        try:
            job = await self._ops.start_backup(
                trigger.item_id,
                trigger.vault_id,
                skip_if_running=trigger.skip_if_running,
                stop_after_seconds=trigger.stop_after_seconds,
                bandwidth_bps=self._bandwidth(trigger.schedule_id),
            )
        except AgentError as e:
            log.warning("schedule %s could not start: %s", trigger.schedule_id, e)
            return
        task = asyncio.create_task(self._follow(trigger, job))
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    def _bandwidth(self, schedule_id: str) -> int:
        profile = self._ops.profile.cached()
        found = next((s for s in profile.schedules if s.schedule_id == schedule_id), None)
        return found.bandwidth_limit_bps if found else 0

    async def _follow(self, trigger: Trigger, job: JobRecord) -> None:
        ended = await self._ops.runner.wait(job.job_id)
        if ended is not None and ended.status.ok:
            await self._retention_after(trigger)
        if ended is not None and ended.status is Status.ERROR:
            retries = self._scheduler.plan_retries(trigger.schedule_id, self._now())
            if retries:
                log.info(
                    "schedule %s failed; %d retries planned", trigger.schedule_id, len(retries)
                )
                self._wake.set()

    async def _retention_after(self, trigger: Trigger) -> None:
        """The automatic retention pass after a scheduled backup. Levels 0-2 run it after
        every backup; level 3 ("less often") at most once a day per vault. Nothing runs
        when every snapshot is kept anyway."""
        profile = self._ops.profile.cached()
        schedule = next(
            (s for s in profile.schedules if s.schedule_id == trigger.schedule_id), None
        )
        rules = retention_rules(profile, trigger.vault_id)
        deletes = any(
            p.mode is RetentionMode.DELETE_EXCEPT
            for p in (rules.vault_default, *rules.item_overrides.values())
        )
        if schedule is None or not deletes:
            return
        now = time.time()
        if (
            schedule.retention_level == 3
            and now - self._last_retention.get(trigger.vault_id, 0.0) < 86400
        ):
            return
        self._last_retention[trigger.vault_id] = now
        try:
            await self._ops.start_vault_job(
                Classification.RETENTION, trigger.vault_id, scheduled=True
            )
        except AgentError as e:
            log.warning("automatic retention pass could not start: %s", e)

    def _record_missed(self, trigger: Trigger) -> None:
        login = self._ops.state.load_login()
        planned_ns = int(trigger.first_planned.timestamp() * 1e9)
        message = (
            f"the scheduled backup due at {trigger.planned.isoformat()} did not run "
            "(the agent was not running or the device was asleep)"
        )
        # The id the server's missed-run sweep gives the same run, so the server keeps
        # one row for it whichever side records it first.
        key = f"comet-missed:{trigger.schedule_id}:{trigger.first_planned.isoformat()}"
        job = JobRecord(
            job_id=str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
            classification=Classification.BACKUP,
            status=Status.MISSED,
            device_id=login.device_id,
            username=login.username,
            item_id=trigger.item_id,
            vault_id=trigger.vault_id,
            started_ns=planned_ns,
            ended_ns=planned_ns,
            error=message,
        )
        self._ops.jobs.save(job)
        self._ops.jobs.append_log(
            job.job_id, [LogEntry(1, time.time_ns(), Severity.ERROR, message)]
        )
        log.warning(
            "schedule %s: the run due at %s was missed", trigger.schedule_id, trigger.planned
        )

    # ------------------------------------------------------------ persistence

    def _load_last_run(self) -> dict[str, datetime]:
        raw = self._ops.state.get_blob(_STATE_KEY)
        if not raw:
            return {}
        try:
            data = json.loads(raw)
            return {k: datetime.fromisoformat(v) for k, v in data.items()}
        except (ValueError, AttributeError):
            return {}

    def _save_last_run(self) -> None:
        data = {k: v.isoformat() for k, v in self._scheduler.last_run.items()}
        self._ops.state.put_blob(_STATE_KEY, json.dumps(data).encode())
