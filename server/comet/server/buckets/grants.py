"""Delete grants for immutable buckets.

A grant is ``g1.<bucket id>.<device id>.<expiry unix seconds>.<tag>``, where ``tag``
is HMAC-SHA256 (base64url) of those fields under the same secret as bucket
credentials (with a distinct label, so a credential is never a grant). It opens
deletes in one bucket, for one device's credential, until it expires; nothing is
stored, so every instance checks it alone. The server hands one out only to a
SUPER admin, to a device whose user has just re-entered their password, or to a
device's scheduled retention inside its policy's retention window (ending with it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

PREFIX = "g1"
# How long a grant works: long enough for one prune, short enough that a stolen one
# is soon useless (and objects within their protection stay undeletable anyway).
GRANT_SECONDS = 3600


@dataclass(frozen=True)
class Grant:
    token: str
    expires_at: datetime


def _tag(secret: bytes, bucket_id: str, device_id: str, expiry: int) -> str:
    message = f"bucket-delete-grant:{bucket_id}:{device_id}:{expiry}".encode()
    mac = hmac.new(secret, message, hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def issue(
    secret: bytes, bucket_id: str, device_id: str, now: datetime, seconds: int = GRANT_SECONDS
) -> Grant:
    """``device_id`` may be ``*``: any device of the bucket's account (an admin's grant)."""
    expiry = int(now.timestamp()) + seconds
    token = (
        f"{PREFIX}.{bucket_id}.{device_id}.{expiry}.{_tag(secret, bucket_id, device_id, expiry)}"
    )
    return Grant(token, datetime.fromtimestamp(expiry, UTC))


def valid(secret: bytes, token: str, bucket_id: str, device_id: str, now: datetime) -> bool:
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != PREFIX:
        return False
    _, grant_bucket, grant_device, expiry_text, tag = parts
    if grant_bucket != bucket_id or grant_device not in (device_id, "*"):
        return False
    try:
        expiry = int(expiry_text)
    except ValueError:
        return False
    if expiry < now.timestamp():
        return False
    return hmac.compare_digest(tag, _tag(secret, grant_bucket, grant_device, expiry))
