"""Server-side handling of login secrets: the server sees only each client's
*authentication key* (derived from the password on the client) and stores a slow,
salted hash of it. Pre-login answers for unknown usernames are indistinguishable
from real ones, so usernames cannot be probed."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from comet.agent.credentials import KDF_SCRYPT, KdfParams
from comet.server.errors import ThrottledError

# Server-side hash of the authentication key. The key already carries the client's
# scrypt cost, so a moderate cost here suffices to make a stolen table expensive.
_SERVER_LOG2_N = 14
# How much lower than the rest of the server the hash workers run (nice value).
HASH_WORKER_NICE = 10

R = TypeVar("R")


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


class AuthKeyHasher:
    """Runs the server-side hash in a small pool of worker threads, never on the
    event loop (the scrypt call releases the GIL, so the loop keeps answering other
    calls while hashes run). At most ``queue_limit`` checks wait or run at once;
    past that the caller is told to come back, rather than queueing without bound.

    ``verify(key, None)`` checks against a decoy hash of the same cost, so a
    username that does not exist costs what one that exists does."""

    def __init__(self, *, workers: int = 0, queue_limit: int = 256) -> None:
        workers = workers or max(1, min(4, (os.cpu_count() or 1) - 1))
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="auth-hash", initializer=_lower_priority
        )
        self._slots = queue_limit
        self._decoy = hash_auth_key(os.urandom(32))

    async def hash(self, auth_key: bytes) -> StoredSecret:
        return await self._run(hash_auth_key, auth_key)

    async def verify(self, auth_key: bytes, stored: StoredSecret | None) -> bool:
        ok = await self._run(verify_auth_key, auth_key, stored or self._decoy)
        return ok and stored is not None

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        if self._slots <= 0:
            raise ThrottledError("the server is busy checking passwords; try again in a moment")
        self._slots -= 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, fn, *args)
        finally:
            self._slots += 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    """Hash workers yield the CPU to the event loop: a burst of logins must not slow
    every other call (Linux nice values are per thread)."""
    # Not Linux, or not permitted: run at normal priority.
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_WORKER_NICE)


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
