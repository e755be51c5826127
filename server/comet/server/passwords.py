"""Server-side handling of login secrets: the server sees only each client's
*authentication key* (derived from the password on the client) and stores a slow,
salted hash of it. Pre-login answers for unknown usernames are indistinguishable
from real ones, so usernames cannot be probed."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from comet.agent.credentials import KDF_SCRYPT, KdfParams

# Server-side hash of the authentication key. The key already carries the client's
# scrypt cost, so a moderate cost here suffices to make a stolen table expensive.
_SERVER_LOG2_N = 14


@dataclass(frozen=True)
class StoredSecret:
    auth_hash: bytes
    auth_salt: bytes


def hash_auth_key(auth_key: bytes, salt: bytes | None = None) -> StoredSecret:
    salt = salt if salt is not None else os.urandom(16)
    digest = Scrypt(salt=salt, length=32, n=1 << _SERVER_LOG2_N, r=8, p=1).derive(auth_key)
    return StoredSecret(auth_hash=digest, auth_salt=salt)


def verify_auth_key(auth_key: bytes, stored: StoredSecret) -> bool:
    candidate = hash_auth_key(auth_key, stored.auth_salt).auth_hash
    return hmac.compare_digest(candidate, stored.auth_hash)


def decoy_kdf(server_secret: bytes, username: str) -> KdfParams:
    """Stable, plausible KDF parameters for a username that does not exist."""
    salt = hmac.new(server_secret, b"prelogin:" + username.encode(), hashlib.sha256).digest()
    return KdfParams(algorithm=KDF_SCRYPT, salt=salt[:16])


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def kdf_to_json(params: KdfParams) -> dict[str, int | str]:
    return {
        "algorithm": params.algorithm,
        "salt": params.salt.hex(),
        "log2_n": params.log2_n,
        "r": params.r,
        "p": params.p,
    }


def kdf_from_json(data: dict[str, object]) -> KdfParams:
    return KdfParams(
        algorithm=int(str(data["algorithm"])),
        salt=bytes.fromhex(str(data["salt"])),
        log2_n=int(str(data["log2_n"])),
        r=int(str(data["r"])),
        p=int(str(data["p"])),
    )
