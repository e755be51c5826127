"""``ForeignSetup``: what each product reader extracts from a configuration, before it is
mapped onto Comet. Items are already Comet items; repositories, retention and schedules
are still in the foreign product's terms."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from comet.agent.items import ItemSpec


class RepositoryDialect(enum.Enum):
    """Whose repository URL syntax a location string uses."""

    BORG = "borg"
    RESTIC = "restic"


class ScheduleSyntax(enum.Enum):
    CRON = "cron"
    ON_CALENDAR = "systemd OnCalendar"


@dataclass(frozen=True)
class ForeignRepository:
    location: str
    dialect: RepositoryDialect
    label: str = ""


@dataclass(frozen=True)
class KeepRules:
    """Snapshot retention in borg/restic terms (``keep_*``); 0 or "" means not set.

    A negative count means "unlimited", as restic allows."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: str = ""
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True)
class ForeignSchedule:
    syntax: ScheduleSyntax
    expression: str


@dataclass(frozen=True)
class ForeignSetup:
    """One importable setup. ``schedule`` is None when the product has no schedule of its
    own; ``schedule_note`` then says how it usually ran."""

    name: str
    items: tuple[ItemSpec, ...] = ()
    repositories: tuple[ForeignRepository, ...] = ()
    keep: KeepRules = field(default_factory=KeepRules)
    schedules: tuple[ForeignSchedule, ...] = ()
    schedule_note: str = ""
    warnings: tuple[str, ...] = ()

    def describe(self, product: str, where: str) -> str:
        """One line for a person: what, how many, to where."""
        folders = sum(len(i.includes) for i in self.items if i.program_command == "")
        programs = sum(1 for i in self.items if i.program_command)
        parts = [_count(folders, "folder")]
        if programs:
            parts.append(_count(programs, "database dump"))
        repos = _count(len(self.repositories), "repository", "repositories")
        return f"{product} {self.name}: {', '.join(parts)} to {repos} ({where})"


def _count(n: int, singular: str, plural: str = "") -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"
