"""The work of an Import job (4008): turn another product's configuration into
Protected Items, Storage Vaults, schedules and retention in the user's profile."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from comet.agent.importers import ImportPlan, ImportSource, plan_import
from comet.agent.jobs.codes import Status
from comet.agent.jobs.runner import JobHandle, JobOutcome


@dataclass(frozen=True)
class ImportJob:
    source: ImportSource
    apply: Callable[[ImportPlan, JobHandle], Coroutine[Any, Any, None]]
    loop: asyncio.AbstractEventLoop

    def __call__(self, handle: JobHandle) -> JobOutcome:
        handle.info(f"importing {self.source.product} settings from {self.source.path or 'env'}")
        plan = plan_import(self.source)
        for warning in plan.warnings:
            handle.warning(warning)
        # The profile is edited on the event loop, where the server calls live.
        asyncio.run_coroutine_threadsafe(self.apply(plan, handle), self.loop).result()
        return JobOutcome(Status.SUCCESS)


def new_id() -> str:
    return str(uuid.uuid4())
