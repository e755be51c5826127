"""Import settings from other backup products (borgmatic, resticprofile, autorestic,
restic environment files) into Comet Protected Items, Storage Vaults, Schedules and a
retention policy.

``detect`` finds the foreign configurations of one Linux user; ``plan_import`` turns one
of them into an ``ImportPlan`` that a person reviews before the caller creates anything.
Nothing here writes, contacts a server or reuses a foreign repository: every plan proposes
new, empty Comet vaults next to the old repositories.

Synchronous and framework-free: this package must not import grpc, asyncio or Qt, and it
never prints. It reads YAML with PyYAML and TOML with ``tomllib``.
"""

from __future__ import annotations

from comet.agent.importers.detect import detect
from comet.agent.importers.plan import ImportPlan, SchedulePlan, ScheduleTiming, VaultPlan
from comet.agent.importers.planner import plan_import
from comet.agent.importers.source import DetectResult, ImporterError, ImportSource, Product

__all__ = [
    "DetectResult",
    "ImportPlan",
    "ImportSource",
    "ImporterError",
    "Product",
    "SchedulePlan",
    "ScheduleTiming",
    "VaultPlan",
    "detect",
    "plan_import",
]
