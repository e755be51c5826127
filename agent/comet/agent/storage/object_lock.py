"""Immutable vaults on the agent's side.

Which vault types can enforce immutability (a server bucket: the Comet Server; S3:
Object Lock), the refusal for those that cannot (local, SFTP: whoever has root on
the device can delete the files), and S3 Object Lock: the bucket check at ``vault
add``, the retain-until date every data object is written with, and reads that
survive what a holder of the vault's keys can still do to a locked bucket (delete
markers and newer versions hide an object; they cannot destroy it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from comet.agent.storage.base import StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SECONDS_PER_DAY = 86400
# Lock objects come and go; they are never locked (they hide nothing).
MUTABLE_PREFIX = "locks/"
GOVERNANCE = "GOVERNANCE"
COMPLIANCE = "COMPLIANCE"


class ImmutabilityUnsupportedError(StorageError):
    code = "storage.immutable_unsupported"


@dataclass(frozen=True)
class Protection:
    """An immutable vault's protection: objects stay for ``seconds`` after writing."""

    seconds: int
    mode: str = GOVERNANCE  # S3 Object Lock mode

    def until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.seconds)


def protection_seconds(days: int, seconds: int) -> int:
    return seconds or days * SECONDS_PER_DAY


def refuse_unenforceable(vault_type: str, name: str) -> None:
    """Local and SFTP vaults cannot be immutable: say so rather than pretend."""
    if vault_type in ("local", "sftp"):
        raise ImmutabilityUnsupportedError(
            f"Storage Vault {name!r}: a {vault_type} vault cannot be immutable, because"
            " anyone with root on this device (or the SFTP login) can delete its files;"
            " use a Comet Server vault (--type comet) or S3 with Object Lock"
        )


def is_protected_key(key: str) -> bool:
    return not key.startswith(MUTABLE_PREFIX)


def check_bucket_lock(client: S3Client, bucket: str) -> str:
    """The bucket's Object Lock state, refused with a clear message when it has none
    (Object Lock can only be turned on when a bucket is created)."""
    try:
        config = client.get_object_lock_configuration(Bucket=bucket)
    except Exception as e:  # botocore ClientError: ObjectLockConfigurationNotFoundError
        raise ImmutabilityUnsupportedError(
            f"S3 bucket {bucket!r} does not have Object Lock enabled, so it cannot hold an"
            " immutable vault; create a new bucket with Object Lock enabled"
            f" (it cannot be turned on later) ({e})"
        ) from e
    state = config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled", "")
    if state != "Enabled":
        raise ImmutabilityUnsupportedError(
            f"S3 bucket {bucket!r} does not have Object Lock enabled, so it cannot hold an"
            " immutable vault; create a new bucket with Object Lock enabled"
        )
    return state


def put_lock_args(protection: Protection, key: str, now: datetime) -> dict[str, Any]:
    """Extra ``put_object`` arguments: a retain-until date for every data object."""
    if not is_protected_key(key):
        return {}
    return {
        "ObjectLockMode": protection.mode,
        "ObjectLockRetainUntilDate": protection.until(now),
    }


def original_version(client: S3Client, bucket: str, name: str) -> str | None:
    """The id of the first version ever written of ``name`` (packs, indexes and
    snapshots are named by the hash of their bytes, so the first write is the real
    one): what a later overwrite or delete marker would hide. None: none exists."""
    oldest: tuple[datetime, str] | None = None
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=name):
        for version in page.get("Versions", []):
            if version.get("Key") != name:
                continue
            when = version.get("LastModified", datetime.min.replace(tzinfo=UTC))
            vid = version.get("VersionId", "")
            if oldest is None or when <= oldest[0]:  # newest first: ties go to the later
                oldest = (when, vid)
    return oldest[1] if oldest else None


def retained_until(client: S3Client, bucket: str, name: str, version: str) -> datetime | None:
    head = client.head_object(Bucket=bucket, Key=name, VersionId=version)
    until = head.get("ObjectLockRetainUntilDate")
    return until if isinstance(until, datetime) else None
