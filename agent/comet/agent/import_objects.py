"""An import plan as the profile objects it becomes (Storage Vaults, Protected Items,
schedules), built by one function for both the Import job and ``comet import
--dry-run``, so the preview shows exactly what the job would add. Also the policy
check that applies to every way of importing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from comet.agent.convert import (
    item_to_proto,
    retention_to_proto,
    schedule_to_proto,
    vault_settings_to_proto,
)
from comet.agent.errors import AgentError
from comet.agent.importers import ImportPlan
from comet.v1 import common_pb2


class ImportHiddenError(AgentError):
    code = "import_hidden"


@dataclass(frozen=True)
class ImportObjects:
    vaults: list[common_pb2.StorageVault]
    items: list[common_pb2.ProtectedItem]
    schedules: list[common_pb2.Schedule]


def plan_objects(plan: ImportPlan, *, device_id: str, new_id: Callable[[], str]) -> ImportObjects:
    """The profile objects ``plan`` becomes (vault keys are added by the job)."""
    vaults = []
    for vault_plan in plan.vaults:
        spec = vault_plan.to_spec(vault_id=new_id())
        msg = common_pb2.StorageVault(
            vault_id=spec.vault_id,
            name=spec.name,
            type=int(spec.type),  # type: ignore[arg-type]
            default_retention=retention_to_proto(plan.retention),
        )
        vault_settings_to_proto(spec.settings, msg)
        vaults.append(msg)
    items = [
        item_to_proto(replace(item, item_id=new_id(), owner_device_id=device_id))
        for item in plan.items
    ]
    schedules = [
        schedule_to_proto(
            s.to_spec(
                schedule_id=new_id(),
                item_id=items[s.item_index].item_id,
                vault_id=vaults[s.vault_index].vault_id,
            )
        )
        for s in plan.schedules
        if s.vault_index < len(vaults)
    ]
    return ImportObjects(vaults, items, schedules)


def check_import_allowed(profile: common_pb2.Profile) -> None:
    """The policy's "hide Import" holds for the CLI as it does for the app."""
    if profile.HasField("policy") and profile.policy.flags.hide_import:
        raise ImportHiddenError(
            f"importing settings is turned off by the policy {profile.policy.name!r}; "
            "ask your administrator"
        )
