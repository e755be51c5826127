"""The stored form of a user profile and the rules for changing it.

A profile is one JSON document in ``users.profile``::

    {"settings": {...}, "items": [...], "vaults": [...], "schedules": [...],
     "recovery_enabled": bool}

Settings, items, vaults and schedules use the protobuf JSON form of the matching
``comet.v1`` messages (proto field names, integer enums, bytes as base64), produced by
the rpc layer; this module reads only the few keys it enforces rules on and keeps the
rest as given. Vault secrets are sealed with the server key before storing. Pure
functions: no database, no protobuf.
"""

from __future__ import annotations

import base64
import copy
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from comet.server.errors import InvalidRequestError, PermissionDeniedError
from comet.server.secret_box import SecretBox, is_sealed
from comet.server.store.policies import PolicyRecord

Doc = dict[str, Any]

ITEM_TYPE_FILES = 1
# (settings oneof key, field) of every vault secret sealed at rest.
SECRET_FIELDS = (
    ("s3", "secret_key"),
    ("sftp", "password"),
    ("sftp", "private_key"),
    ("comet", "bucket_key"),
)


def empty() -> Doc:
    return {"settings": {}, "items": [], "vaults": [], "schedules": [], "recovery_enabled": False}


def normalised(doc: Doc | None) -> Doc:
    out = empty()
    out.update(copy.deepcopy(doc or {}))
    return out


def scheduled_devices(doc: Doc | None) -> set[str]:
    """Devices owning a Protected Item that an enabled schedule backs up (a device
    without one is never overdue)."""
    doc = normalised(doc)
    enabled = {sc.get("item_id") for sc in doc["schedules"] if sc.get("enabled")}
    return {
        str(item["owner_device_id"])
        for item in doc["items"]
        if item.get("owner_device_id") and item.get("item_id") in enabled
    }


def timestamp_json(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------- secrets


def _secret_context(user_id: str, vault_id: str, kind: str, name: str) -> str:
    return f"vault:{user_id}:{vault_id}:{kind}.{name}"


def _map_secrets(vaults: Iterable[Doc], fn: Callable[[str, str, str, str], str | None]) -> None:
    for vault in vaults:
        for kind, name in SECRET_FIELDS:
            settings = vault.get(kind)
            if isinstance(settings, dict) and settings.get(name):
                value = fn(str(vault.get("vault_id", "")), kind, name, str(settings[name]))
                if value is None:
                    del settings[name]
                else:
                    settings[name] = value


def seal_secrets(doc: Doc, box: SecretBox, user_id: str) -> Doc:
    out = copy.deepcopy(doc)

    def seal(vault_id: str, kind: str, name: str, value: str) -> str:
        return box.seal(value, context=_secret_context(user_id, vault_id, kind, name))

    _map_secrets(out["vaults"], seal)
    return out


def open_secrets(doc: Doc, box: SecretBox, user_id: str) -> Doc:
    out = copy.deepcopy(doc)

    def open_(vault_id: str, kind: str, name: str, value: str) -> str:
        if not is_sealed(value):
            return value
        return box.open(value, context=_secret_context(user_id, vault_id, kind, name))

    _map_secrets(out["vaults"], open_)
    return out


def redact_secrets(doc: Doc) -> Doc:
    """The document without vault secrets, for readers other than the account's devices."""
    out = copy.deepcopy(doc)
    _map_secrets(out["vaults"], lambda *_: None)
    return out


# ---------------------------------------------------------------------- policy view


def _exclusions_for(policy: PolicyRecord | None, os_name: str) -> tuple[list[str], list[str]]:
    globs: list[str] = []
    regexes: list[str] = []
    for rule in policy.exclusions if policy else []:
        rule_os = str(rule.get("os", "")).lower()
        if rule_os and rule_os != os_name.lower():
            continue
        (regexes if rule.get("is_regex") else globs).append(str(rule.get("pattern", "")))
    return globs, regexes


def effective(doc: Doc, policy: PolicyRecord | None, device_os: dict[str, str]) -> Doc:
    """The profile as devices see it: mandatory exclusions added to every Files item
    (per the owning device's OS) and an enforced retention replacing the vaults' and
    items' own."""
    out = normalised(doc)
    for item in out["items"]:
        if item.get("type") == ITEM_TYPE_FILES:
            globs, regexes = _exclusions_for(
                policy, device_os.get(item.get("owner_device_id", ""), "")
            )
            for key, patterns in (("exclude_globs", globs), ("exclude_regexes", regexes)):
                present = item.setdefault(key, [])
                present.extend(p for p in patterns if p not in present)
    enforced = policy.enforced_retention if policy else None
    if enforced is not None:
        for vault in out["vaults"]:
            vault["default_retention"] = copy.deepcopy(enforced)
        for item in out["items"]:
            item.pop("retention_overrides", None)
    return out


def _strip_effective(item: Doc, policy: PolicyRecord | None, os_name: str) -> Doc:
    """Undoes ``effective`` on an item a client sends back."""
    out = copy.deepcopy(item)
    if out.get("type") == ITEM_TYPE_FILES:
        globs, regexes = _exclusions_for(policy, os_name)
        for key, patterns in (("exclude_globs", globs), ("exclude_regexes", regexes)):
            if key in out:
                out[key] = [p for p in out[key] if p not in patterns]
                if not out[key]:
                    del out[key]
    return out


# ---------------------------------------------------------------------- merging a write


def _refuse(rule: str, what: str) -> PermissionDeniedError:
    return PermissionDeniedError(f"{what} is not allowed by your policy ({rule})")


def _by_id(entries: list[Doc], key: str, what: str) -> dict[str, Doc]:
    out: dict[str, Doc] = {}
    for entry in entries:
        entry_id = str(entry.get(key, ""))
        if entry_id in out and entry_id:
            raise InvalidRequestError(f"two {what}s have the id {entry_id!r}")
        out[entry_id] = entry
    return out


def _without(entry: Doc, *keys: str) -> Doc:
    return {k: v for k, v in entry.items() if k not in keys}


def merge(
    stored: Doc,
    incoming: Doc,
    *,
    device_id: str,
    policy: PolicyRecord | None,
    device_os: dict[str, str],
    now: datetime,
) -> Doc:
    """The new stored document for a device's write of the whole profile.

    ``stored`` has its secrets opened. Raises PermissionDeniedError for a change the
    policy forbids or for another device's items, InvalidRequestError for a malformed
    document."""
    stored = normalised(stored)
    incoming = normalised(incoming)
    enforced = policy.enforced_retention if policy else None
    flag = policy.flag if policy else (lambda _name: False)
    created = timestamp_json(now)

    old_items = _by_id(stored["items"], "item_id", "item")
    items: list[Doc] = []
    for raw in incoming["items"]:
        item_id = str(raw.get("item_id", ""))
        old = old_items.get(item_id) if item_id else None
        owner = old.get("owner_device_id", "") if old else device_id
        item = _strip_effective(raw, policy, device_os.get(owner, ""))
        if old is None:
            if flag("prevent_new_item"):
                raise _refuse("prevent_new_item", "adding a Protected Item")
            item["item_id"] = item_id or str(uuid.uuid4())
            item["owner_device_id"] = device_id
            item["created_at"] = created
            if enforced is not None:
                item.pop("retention_overrides", None)
        else:
            item["owner_device_id"] = owner
            item["created_at"] = old.get("created_at", created)
            if enforced is not None:
                item.pop("retention_overrides", None)
                if "retention_overrides" in old:
                    item["retention_overrides"] = old["retention_overrides"]
            if item != old:
                if owner != device_id:
                    raise PermissionDeniedError(
                        f"Protected Item {old.get('name', item_id)!r} belongs to another "
                        "device; only that device can change it"
                    )
                if flag("prevent_edit_item"):
                    raise _refuse("prevent_edit_item", "changing a Protected Item")
        items.append(item)
    kept = {i["item_id"] for i in items}
    if len(kept) != len(items):
        raise InvalidRequestError("two items have the same id")
    for item_id, old in old_items.items():
        if item_id in kept:
            continue
        if old.get("owner_device_id") != device_id:
            raise PermissionDeniedError(
                f"Protected Item {old.get('name', item_id)!r} belongs to another device; "
                "only that device can delete it"
            )
        if flag("prevent_delete_item"):
            raise _refuse("prevent_delete_item", "deleting a Protected Item")

    old_vaults = _by_id(stored["vaults"], "vault_id", "vault")
    vaults: list[Doc] = []
    for raw in incoming["vaults"]:
        vault = copy.deepcopy(raw)
        vault_id = str(vault.get("vault_id", ""))
        old = old_vaults.get(vault_id) if vault_id else None
        bind_commands(vault, old, device_id=device_id)
        if old is None:
            vault["vault_id"] = vault_id or str(uuid.uuid4())
            vault["created_at"] = created
            if enforced is not None:
                vault.pop("default_retention", None)
        else:
            vault["created_at"] = old.get("created_at", created)
            if enforced is not None:
                vault.pop("default_retention", None)
                if "default_retention" in old:
                    vault["default_retention"] = old["default_retention"]
            if vault != old and flag("prevent_edit_vault"):
                raise _refuse("prevent_edit_vault", "changing a Storage Vault")
        vaults.append(vault)
    vault_ids = {v["vault_id"] for v in vaults}
    if len(vault_ids) != len(vaults):
        raise InvalidRequestError("two vaults have the same id")
    if flag("prevent_delete_vault") and set(old_vaults) - vault_ids:
        raise _refuse("prevent_delete_vault", "deleting a Storage Vault")

    old_schedules = _by_id(stored["schedules"], "schedule_id", "schedule")
    schedules: list[Doc] = []
    for raw in incoming["schedules"]:
        schedule = copy.deepcopy(raw)
        schedule_id = str(schedule.get("schedule_id", ""))
        old = old_schedules.get(schedule_id) if schedule_id else None
        schedule["schedule_id"] = schedule_id or str(uuid.uuid4())
        schedule["created_at"] = old.get("created_at", created) if old else created
        if schedule.get("item_id") not in kept:
            raise InvalidRequestError(
                f"schedule {schedule['schedule_id']} names an unknown Protected Item"
            )
        if schedule.get("vault_id") not in vault_ids:
            raise InvalidRequestError(
                f"schedule {schedule['schedule_id']} names an unknown Storage Vault"
            )
        schedules.append(schedule)

    settings = copy.deepcopy(incoming["settings"])
    if flag("prevent_change_email") and settings.get("emails", []) != stored["settings"].get(
        "emails", []
    ):
        raise _refuse("prevent_change_email", "changing the account's email addresses")
    return {
        "settings": settings,
        "items": items,
        "vaults": vaults,
        "schedules": schedules,
        "recovery_enabled": bool(incoming.get("recovery_enabled", False)),
    }


def bind_commands(vault: Doc, old: Doc | None, *, device_id: str) -> None:
    """Binds each of a vault's pre/post commands to the device that set it. A vault is
    shared by every device of the account, so a command must not travel: one kept
    unchanged keeps its owner, whatever the message claims; a new or changed one
    belongs to the writing device, and only that device runs it."""
    for key in ("pre_commands", "post_commands"):
        owners: dict[str, list[str]] = {}
        for command in old.get(key, []) if old else []:
            if isinstance(command, dict):
                owners.setdefault(str(command.get("command", "")), []).append(
                    str(command.get("owner_device_id", ""))
                )
        bound = []
        for command in vault.get(key, []):
            if not isinstance(command, dict):
                raise InvalidRequestError(f"a vault's {key} must be a list of commands")
            text = str(command.get("command", ""))
            previous = owners.get(text)
            owner = previous.pop(0) if previous else device_id
            entry = {"command": text}
            if owner:
                entry["owner_device_id"] = owner
            bound.append(entry)
        if bound:
            vault[key] = bound
        else:
            vault.pop(key, None)


def with_policy_defaults(
    doc: Doc, policy: PolicyRecord | None, *, device_id: str, now: datetime
) -> Doc:
    """Adds the policy's default Protected Items (owned by a newly registered device)
    and their default schedules. A default schedule goes to the vault it names if the
    account has it, else to the account's first vault; with no vault it is skipped."""
    out = normalised(doc)
    if policy is None or not policy.default_items:
        return out
    created = timestamp_json(now)
    new_ids: dict[str, str] = {}
    for template in policy.default_items:
        item = copy.deepcopy(template)
        new_id = str(uuid.uuid4())
        new_ids[str(template.get("item_id", ""))] = new_id
        item.update(item_id=new_id, owner_device_id=device_id, created_at=created)
        out["items"].append(item)
    vault_ids = [str(v.get("vault_id")) for v in out["vaults"]]
    for template in policy.default_schedules:
        item_id = new_ids.get(str(template.get("item_id", "")))
        if item_id is None and len(new_ids) == 1:
            item_id = next(iter(new_ids.values()))
        vault_id = template.get("vault_id")
        if vault_id not in vault_ids:
            vault_id = vault_ids[0] if vault_ids else None
        if item_id is None or vault_id is None:
            continue
        schedule = copy.deepcopy(template)
        schedule.update(
            schedule_id=str(uuid.uuid4()), item_id=item_id, vault_id=vault_id, created_at=created
        )
        out["schedules"].append(schedule)
    return out


# ---------------------------------------------------------------------- passwords


def rewrap_vault_keys(doc: Doc, rewrapped: dict[str, bytes]) -> Doc:
    """Replaces every vault's wrapped key with its re-wrapped one. Every vault that
    has a wrapped key must be given one, or its data would become unreadable."""
    out = normalised(doc)
    known = {str(v.get("vault_id")) for v in out["vaults"]}
    unknown = set(rewrapped) - known
    if unknown:
        raise InvalidRequestError(f"no vault {sorted(unknown)[0]!r} in this profile")
    for vault in out["vaults"]:
        vault_id = str(vault.get("vault_id"))
        if vault_id in rewrapped:
            vault["wrapped_vault_key"] = base64.b64encode(rewrapped[vault_id]).decode("ascii")
        elif vault.get("wrapped_vault_key"):
            raise InvalidRequestError(
                f"the vault key of vault {vault.get('name', vault_id)!r} was not re-wrapped "
                "for the new password"
            )
    return out


def allows_admin_reset(doc: Doc) -> bool:
    return bool(normalised(doc)["settings"].get("allow_admin_reset_password", False))


def allows_admin_view_files(doc: Doc) -> bool:
    return bool(normalised(doc)["settings"].get("allow_admin_view_files", False))
