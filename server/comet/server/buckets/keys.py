"""Object keys: ``/``-separated segments of ``[A-Za-z0-9._-]``, never ``.`` or ``..``.

The same rules as the agent's storage keys, checked again here because the server
trusts no client: a key that passes can never name a path outside its bucket, nor
collide with the server's temp files (their names contain ``~``).
"""

from __future__ import annotations

import re

from comet.server.buckets.errors import InvalidKeyError

_KEY_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


def check_key(key: str) -> str:
    if not _KEY_RE.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise InvalidKeyError(f"invalid storage key {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """``""``, a key, or a key followed by ``/``; matched as a plain string prefix."""
    if prefix:
        check_key(prefix.removesuffix("/"))
    return prefix
