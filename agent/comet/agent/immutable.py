"""Rules for adding an immutable Storage Vault: which types can enforce it, what a
policy requires, and checking an S3 bucket really has Object Lock before any data
is written to it."""

from __future__ import annotations

from pathlib import Path

from comet.agent.convert import vault_from_proto
from comet.agent.storage.object_lock import (
    SECONDS_PER_DAY,
    ImmutabilityUnsupportedError,
    refuse_unenforceable,
)
from comet.agent.vaults import S3Settings, VaultSpec, open_storage
from comet.v1 import common_pb2


def check_new_vault(vault: common_pb2.StorageVault, forced_days: int) -> None:
    """Refuse an immutable vault of a type that cannot enforce it, and a vault less
    protected than the account's policy requires."""
    seconds = vault_from_proto(vault).immutable_seconds
    kind = vault.WhichOneof("settings") or ""
    if seconds:
        refuse_unenforceable(kind, vault.name)
    if forced_days and seconds < forced_days * SECONDS_PER_DAY:
        refuse_unenforceable(kind, vault.name)
        raise ImmutabilityUnsupportedError(
            f"Storage Vault {vault.name!r}: your account's policy requires immutable vaults"
            f" protected for at least {forced_days} days; add it with --immutable-days"
            f" {forced_days} (or more)"
        )


def check_storage(spec: VaultSpec, *, key_dir: Path) -> None:
    """An immutable S3 vault's bucket must have Object Lock (it cannot be added later)."""
    if not spec.immutable_seconds or not isinstance(spec.settings, S3Settings):
        return
    from comet.agent.storage.s3 import S3Storage

    storage = open_storage(spec, key_dir=key_dir)
    try:
        inner = getattr(storage, "inner", storage)
        if isinstance(inner, S3Storage):
            inner.check_object_lock()
    finally:
        storage.close()
