"""Password-derived secrets, computed on the client (device or admin tool).

The password never leaves the client. ``scrypt(password, salt)`` gives a master
secret from which two independent keys are derived with HKDF:

* the *authentication key*, sent to the server at login (the server stores only a
  slow hash of it), and
* the *wrapping key*, which never leaves the device; it wraps vault keys stored in
  the user profile so the server never holds a usable vault key.

KDF algorithm ids are registered once here and never reused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from comet.agent.errors import AgentError

KDF_SCRYPT = 1

_AUTH_INFO = b"comet v1 authentication key"
_WRAP_INFO = b"comet v1 vault-key wrapping key"
_WRAP_AAD = b"comet v1 wrapped vault key"


class WrongPasswordError(AgentError):
    """A wrapped secret could not be opened with this password's wrapping key."""

    code = "credentials.wrong_password"


@dataclass(frozen=True)
class KdfParams:
    algorithm: int
    salt: bytes
    log2_n: int = 15
    r: int = 8
    p: int = 1

    @classmethod
    def new(cls, *, log2_n: int = 15) -> KdfParams:
        return cls(algorithm=KDF_SCRYPT, salt=os.urandom(16), log2_n=log2_n)


@dataclass(frozen=True)
class LoginSecrets:
    auth_key: bytes
    wrap_key: bytes


def derive_login_secrets(password: str, params: KdfParams) -> LoginSecrets:
    """Run the KDF the server named and split its output into the two keys."""
    if params.algorithm != KDF_SCRYPT:
        raise AgentError(f"the server asked for unknown KDF algorithm {params.algorithm}")
    if not 10 <= params.log2_n <= 22 or not 1 <= params.r <= 32 or not 1 <= params.p <= 16:
        raise AgentError("the server sent KDF parameters outside the accepted range")
    master = Scrypt(salt=params.salt, length=32, n=1 << params.log2_n, r=params.r, p=params.p)
    seed = master.derive(password.encode("utf-8"))
    return LoginSecrets(auth_key=_expand(seed, _AUTH_INFO), wrap_key=_expand(seed, _WRAP_INFO))


def wrap_secret(wrap_key: bytes, secret: bytes) -> bytes:
    """Encrypt ``secret`` (a vault key) under the wrapping key: nonce || ciphertext."""
    nonce = os.urandom(12)
    return nonce + AESGCM(wrap_key).encrypt(nonce, secret, _WRAP_AAD)


def unwrap_secret(wrap_key: bytes, wrapped: bytes) -> bytes:
    """Open a secret made by :func:`wrap_secret`; WrongPasswordError if it will not."""
    from cryptography.exceptions import InvalidTag

    try:
        return AESGCM(wrap_key).decrypt(wrapped[:12], wrapped[12:], _WRAP_AAD)
    except (InvalidTag, ValueError) as e:
        raise WrongPasswordError(
            "this vault key was wrapped with a different password; log in again with "
            "the password that was current when the vault was created"
        ) from e


def _expand(seed: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(seed)
