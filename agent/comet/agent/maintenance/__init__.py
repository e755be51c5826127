"""Vault maintenance: retention (forget + prune), prune, index rebuild, check (deep
verify), unlock and remeasure. Each operation takes an open ``Repository`` plus keyword
options, ``reporter`` and ``cancel``, and returns a frozen result.

Synchronous engine code: must not import grpc, asyncio or Qt, and never prints.
"""

from comet.agent.maintenance.check import (
    AffectedSnapshot,
    CheckResult,
    IntegrityReport,
    Problem,
    ProblemKind,
    Severity,
    check,
)
from comet.agent.maintenance.forget import ForgetResult, apply_retention, delete_snapshots
from comet.agent.maintenance.measure import MeasureResult, measure
from comet.agent.maintenance.prune import PruneResult, prune
from comet.agent.maintenance.reindex import DamagedPack, ReindexResult, rebuild_indexes
from comet.agent.maintenance.reporter import MaintenanceReporter, NullMaintenanceReporter
from comet.agent.maintenance.retention import (
    RangeType,
    RetentionMode,
    RetentionPlan,
    RetentionPolicy,
    RetentionRange,
    RetentionRules,
    plan_retention,
)
from comet.agent.maintenance.unlock import UnlockResult, unlock

__all__ = [
    "AffectedSnapshot",
    "CheckResult",
    "DamagedPack",
    "ForgetResult",
    "IntegrityReport",
    "MaintenanceReporter",
    "MeasureResult",
    "NullMaintenanceReporter",
    "Problem",
    "ProblemKind",
    "PruneResult",
    "RangeType",
    "ReindexResult",
    "RetentionMode",
    "RetentionPlan",
    "RetentionPolicy",
    "RetentionRange",
    "RetentionRules",
    "Severity",
    "UnlockResult",
    "apply_retention",
    "check",
    "delete_snapshots",
    "measure",
    "plan_retention",
    "prune",
    "rebuild_indexes",
    "unlock",
]
