"""``Trigger``: what the scheduler tells the agent to do for one schedule."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class TriggerKind(enum.Enum):
    RUN = "run"
    """Start a backup job (on time, late, or one catch-up run for runs missed while down)."""
    MISSED = "missed"
    """Record one Missed job (status 7004) for runs that did not happen; run nothing."""
    BOOT = "boot"
    """Start a backup job because the agent started and the schedule runs at boot."""
    RETRY = "retry"
    """Start a backup job again after a failed one, per the schedule's retry options."""


@dataclass(frozen=True)
class Trigger:
    """One thing to do now for one schedule. After acting on it (started, skipped or
    recorded), the agent calls ``Scheduler.mark_handled(schedule_id, planned)``.

    ``planned`` is the planned time the trigger stands for (for BOOT, the boot check time);
    ``first_planned`` is the earliest planned run it folds in: equal to ``planned`` unless
    several runs came due at once, in which case they were collapsed into this one trigger.
    """

    schedule_id: str
    item_id: str
    vault_id: str
    planned: datetime
    kind: TriggerKind
    skip_if_running: bool
    stop_after_seconds: int
    first_planned: datetime

    @property
    def folded(self) -> bool:
        """Whether this trigger stands for more than one planned run."""
        return self.first_planned != self.planned
