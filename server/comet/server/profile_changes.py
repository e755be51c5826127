"""What a profile save changed, as audit entries: each Storage Vault, Protected Item and
schedule added, changed or deleted, and the account settings. Secrets never appear
(both documents are compared with their secrets left out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_SECTIONS = (("vaults", "vault_id", "vault"), ("items", "item_id", "item"),
             ("schedules", "schedule_id", "schedule"))  # fmt: skip


@dataclass(frozen=True)
class ProfileChange:
    action: str  # e.g. "vault.add", "item.edit", "schedule.delete", "settings.edit"
    target: str  # the entry's id
    details: str  # its name, when it has one


def profile_changes(before: dict[str, Any], after: dict[str, Any]) -> list[ProfileChange]:
    changes: list[ProfileChange] = []
    for section, key, noun in _SECTIONS:
        old = {str(e.get(key, "")): e for e in before.get(section, [])}
        new = {str(e.get(key, "")): e for e in after.get(section, [])}
        for entry_id, entry in new.items():
            if entry_id not in old:
                changes.append(ProfileChange(f"{noun}.add", entry_id, _name(entry)))
            elif old[entry_id] != entry:
                changes.append(ProfileChange(f"{noun}.edit", entry_id, _name(entry)))
        for entry_id, entry in old.items():
            if entry_id not in new:
                changes.append(ProfileChange(f"{noun}.delete", entry_id, _name(entry)))
    if before.get("settings") != after.get("settings"):
        changes.append(ProfileChange("settings.edit", "", ""))
    return changes


def _name(entry: dict[str, Any]) -> str:
    name = entry.get("name")
    return f"name {name!r}" if name else ""
