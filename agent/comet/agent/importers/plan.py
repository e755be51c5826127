"""What ``plan_import`` proposes: new Comet items, vaults, schedules and a retention policy.

Ids are left for the caller to assign when it creates the objects; schedules refer to
items and vaults by their position in the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from comet.agent.items import ItemSpec
from comet.agent.maintenance.retention import RetentionPolicy
from comet.agent.scheduler.frequency import Frequency
from comet.agent.scheduler.spec import ScheduleSpec
from comet.agent.vaults import VaultSettings, VaultSpec, VaultType


@dataclass(frozen=True)
class VaultPlan:
    """A new Storage Vault to create for one foreign repository.

    ``settings`` never point at the foreign repository itself (its format is not Comet's)
    but next to it. ``missing_secrets`` names the settings fields the person must fill in
    because credentials are never imported (S3: both keys; SFTP: a private key or a
    password); ``foreign_repository`` is the repository this vault replaces, for display.
    """

    name: str
    type: VaultType
    settings: VaultSettings
    foreign_repository: str
    missing_secrets: tuple[str, ...] = ()

    def to_spec(self, *, vault_id: str) -> VaultSpec:
        return VaultSpec(vault_id=vault_id, name=self.name, type=self.type, settings=self.settings)


@dataclass(frozen=True)
class ScheduleTiming:
    """When a schedule runs, in the fields ``ScheduleSpec`` uses (device-local time)."""

    frequency: Frequency
    hour: int = 0
    minute: int = 0
    weekdays: frozenset[int] = frozenset()
    day_of_month: int = 1


DEFAULT_TIMING = ScheduleTiming(Frequency.DAILY, hour=2, minute=0)
"""Proposed when the foreign setup has no schedule Comet can express."""


@dataclass(frozen=True)
class SchedulePlan:
    """A schedule pairing ``items[item_index]`` with ``vaults[vault_index]`` of its plan."""

    item_index: int
    vault_index: int
    timing: ScheduleTiming

    def __post_init__(self) -> None:
        # Fail at planning time, not when the caller creates the schedule.
        self.to_spec(schedule_id="import-check", item_id="", vault_id="")

    def to_spec(self, *, schedule_id: str, item_id: str, vault_id: str) -> ScheduleSpec:
        """The schedule as the scheduler takes it, once the ids are known.

        Raises ScheduleError if the timing is invalid."""
        t = self.timing
        return ScheduleSpec(
            schedule_id=schedule_id,
            item_id=item_id,
            vault_id=vault_id,
            frequency=t.frequency,
            hour=t.hour,
            minute=t.minute,
            weekdays=t.weekdays,
            day_of_month=t.day_of_month,
        )


@dataclass(frozen=True)
class ImportPlan:
    """Everything one foreign setup becomes. ``retention`` is meant as the default policy
    of the new vaults; ``warnings`` list what was approximated or left out, one sentence
    each, for the person to review."""

    items: list[ItemSpec] = field(default_factory=list)
    vaults: list[VaultPlan] = field(default_factory=list)
    schedules: list[SchedulePlan] = field(default_factory=list)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    warnings: list[str] = field(default_factory=list)
