"""The server's periodic bookkeeping: abandoned jobs, log pruning, missed runs,
the months ahead of the partitioned jobs table.

Every step is idempotent and safe to run on several instances at once."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from comet.server.store.availability import is_database_unavailable
from comet.server.store.jobs import JobStore
from comet.server.store.missed_runs import MissedRunFinder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaintenanceReport:
    abandoned: list[str]
    missed: list[str]
    pruned_log_lines: int


@dataclass(frozen=True)
class MaintenancePolicy:
    job_timeout: timedelta = timedelta(minutes=10)
    log_retention: timedelta = timedelta(days=90)
    every: timedelta = timedelta(seconds=30)


class Maintenance:
    def __init__(self, jobs: JobStore, missed: MissedRunFinder, policy: MaintenancePolicy) -> None:
        self._jobs = jobs
        self._missed = missed
        self._policy = policy

    async def run_once(self) -> MaintenanceReport:
        abandoned = await self._jobs.abandon_silent(self._policy.job_timeout)
        missed = await self._missed.sweep()
        pruned = await self._jobs.prune_logs(self._policy.log_retention)
        await self._jobs.ensure_partitions()
        if abandoned or missed:
            log.info("jobs: %d abandoned, %d missed runs recorded", len(abandoned), len(missed))
        return MaintenanceReport(abandoned, missed, pruned)

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self._policy.every.total_seconds())
            try:
                await self.run_once()
            except Exception as e:  # the database may be briefly away; try next round
                if is_database_unavailable(e):
                    log.info("job maintenance skipped: the database is unavailable")
                else:
                    log.exception("job maintenance failed")
