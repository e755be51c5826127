"""Per-device bucket credentials.

A device's credential for a bucket is ``d1.<device id>.<tag>``, where ``tag`` is
HMAC-SHA256 (base64url) of the bucket and device ids under a random secret shared by
every instance (kept in the database sealed with the server key, so a copy of the
database alone forges nothing). Nothing per credential is stored: the server recomputes the tag, and
the credential is good only while its device is not revoked and belongs to the
bucket's account. So revoking a device (or deleting its account) ends its storage
access on every instance at once, and no credential opens any other device's or
account's bucket. The format is versioned by its ``d1.`` prefix.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass

PREFIX = "d1"


@dataclass(frozen=True)
class ParsedCredential:
    device_id: str
    tag: str


def _tag(secret: bytes, bucket_id: str, device_id: str) -> str:
    mac = hmac.new(secret, f"bucket-credential:{bucket_id}:{device_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def issue(secret: bytes, bucket_id: str, device_id: str) -> str:
    return f"{PREFIX}.{device_id}.{_tag(secret, bucket_id, device_id)}"


def parse(credential: str) -> ParsedCredential | None:
    """The device a credential names, or None when it is not one at all."""
    prefix, _, rest = credential.partition(".")
    device_id, _, tag = rest.partition(".")
    if prefix != PREFIX or not tag:
        return None
    try:
        uuid.UUID(device_id)
    except ValueError:
        return None
    return ParsedCredential(device_id, tag)


def matches(secret: bytes, bucket_id: str, parsed: ParsedCredential) -> bool:
    return hmac.compare_digest(parsed.tag, _tag(secret, bucket_id, parsed.device_id))
