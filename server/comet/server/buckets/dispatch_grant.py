"""Retention a SUPER admin dispatches to a device carries a delete grant for the
vault's bucket when that bucket is immutable: the admin's decision is what lets
the device delete (still only objects past their protection, and into the trash)."""

from __future__ import annotations

from typing import Any

from comet.server.buckets.store import BucketStore
from comet.server.store.accounts import Role
from comet.v1 import control_pb2


async def attach_delete_grant(
    command: control_pb2.Command,
    *,
    role: Role,
    device_id: str,
    profile_document: dict[str, Any],
    buckets: BucketStore | None,
) -> bool:
    """Put a grant into an ``apply_retention`` command from a SUPER admin for an
    immutable bucket vault; True when one was attached."""
    if buckets is None or role is not Role.SUPER_ADMIN:
        return False
    if command.WhichOneof("action") != "apply_retention":
        return False
    vault_id = command.apply_retention.vault_id
    for vault in profile_document.get("vaults", []):
        if vault_id not in (vault.get("vault_id"), vault.get("name")):
            continue
        bucket_id = str((vault.get("comet") or {}).get("bucket_id", ""))
        if not bucket_id:
            return False
        owned = {b.bucket_id: b for b in await buckets.list_buckets()}
        record = owned.get(bucket_id)
        if record is None or not record.immutable_seconds:
            return False
        grant = await buckets.issue_grant(bucket_id, device_id=device_id)
        command.apply_retention.delete_grant = grant.token
        return True
    return False
