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

from comet.agent.errors import AgentError

# ``cryptography`` (~10 MiB resident) is imported by the functions that use it: an idle
# agent never derives or unwraps a key.

KDF_SCRYPT = 1

_AUTH_INFO = b"comet v1 authentication key"
_WRAP_INFO = b"comet v1 vault-key wrapping key"
_WRAP_AAD = b"comet v1 wrapped vault key"


# The least any account may use, whatever a server says (scrypt with N = 2^15, r = 8
# takes ~80 ms and 32 MiB here). New accounts get exactly this; stronger is allowed.
FLOOR_LOG2_N = 15
FLOOR_R = 8
# Beyond these a hostile server could make a login hang or exhaust memory.
MAX_LOG2_N = 22
MAX_R = 32
MAX_P = 16


class KdfPolicyError(AgentError):
    """KDF parameters this client refuses: below the floor, or weaker than the ones
    recorded for the account at an earlier login."""

    code = "credentials.kdf_policy"


class WrongPasswordError(AgentError):
    """A wrapped secret could not be opened with this password's wrapping key."""

    code = "credentials.wrong_password"


@dataclass(frozen=True)
class KdfParams:
    algorithm: int
    salt: bytes
    log2_n: int = FLOOR_LOG2_N
    r: int = FLOOR_R
    p: int = 1

    @classmethod
    def new(cls, *, log2_n: int = FLOOR_LOG2_N) -> KdfParams:
        return cls(algorithm=KDF_SCRYPT, salt=os.urandom(16), log2_n=log2_n)

    def renewed(self) -> KdfParams:
        """Parameters for a new password: a fresh salt, the same cost or the floor,
        whichever is higher (a password change must never lower the cost)."""
        return KdfParams(
            algorithm=KDF_SCRYPT,
            salt=os.urandom(16),
            log2_n=max(self.log2_n, FLOOR_LOG2_N),
            r=max(self.r, FLOOR_R),
            p=max(self.p, 1),
        )

    def describe(self) -> str:
        return f"scrypt N=2^{self.log2_n}, r={self.r}, p={self.p}"


def require_kdf_floor(params: KdfParams) -> None:
    """Refuse parameters weaker than the fixed floor (or absurdly expensive): every
    account created or logged into through Comet's clients meets it."""
    if params.algorithm != KDF_SCRYPT:
        raise KdfPolicyError(f"unknown password KDF algorithm {params.algorithm}")
    if params.log2_n < FLOOR_LOG2_N or params.r < FLOOR_R or params.p < 1:
        raise KdfPolicyError(
            f"the account's password key derivation ({params.describe()}) is weaker than "
            f"this client accepts (at least scrypt N=2^{FLOOR_LOG2_N}, r={FLOOR_R}, p=1); "
            "the server may have been tampered with: ask the administrator to check it"
        )
    if params.log2_n > MAX_LOG2_N or params.r > MAX_R or params.p > MAX_P:
        raise KdfPolicyError(
            f"the account's password key derivation ({params.describe()}) is beyond what "
            f"this client accepts (at most N=2^{MAX_LOG2_N}, r={MAX_R}, p={MAX_P})"
        )


def require_no_downgrade(recorded: KdfParams | None, offered: KdfParams) -> None:
    """Refuse parameters weaker than the ones this client recorded for the account at
    an earlier login. A password change (new salt) keeps the cost at least as high, so
    any drop is the server's doing, and a cheaper KDF only helps whoever attacks the
    login key it yields."""
    require_kdf_floor(offered)
    if recorded is None:
        return
    if offered.log2_n < recorded.log2_n or offered.r < recorded.r or offered.p < recorded.p:
        raise KdfPolicyError(
            f"the server now asks for a weaker password key derivation ({offered.describe()}) "
            f"than this client recorded for the account ({recorded.describe()}); refusing to "
            "log in: the server may have been tampered with, ask the administrator to check it"
        )


@dataclass(frozen=True)
class LoginSecrets:
    auth_key: bytes
    wrap_key: bytes


def derive_login_secrets(password: str, params: KdfParams) -> LoginSecrets:
    """Run the KDF the server named and split its output into the two keys."""
    if params.algorithm != KDF_SCRYPT:
        raise AgentError(f"the server asked for unknown KDF algorithm {params.algorithm}")
    if (
        not 10 <= params.log2_n <= MAX_LOG2_N
        or not 1 <= params.r <= MAX_R
        or not 1 <= params.p <= MAX_P
    ):
        raise AgentError("the server sent KDF parameters outside the accepted range")
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    master = Scrypt(salt=params.salt, length=32, n=1 << params.log2_n, r=params.r, p=params.p)
    seed = master.derive(password.encode("utf-8"))
    return LoginSecrets(auth_key=_expand(seed, _AUTH_INFO), wrap_key=_expand(seed, _WRAP_INFO))


def wrap_secret(wrap_key: bytes, secret: bytes) -> bytes:
    """Encrypt ``secret`` (a vault key) under the wrapping key: nonce || ciphertext."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    return nonce + AESGCM(wrap_key).encrypt(nonce, secret, _WRAP_AAD)


def unwrap_secret(wrap_key: bytes, wrapped: bytes) -> bytes:
    """Open a secret made by :func:`wrap_secret`; WrongPasswordError if it will not."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        return AESGCM(wrap_key).decrypt(wrapped[:12], wrapped[12:], _WRAP_AAD)
    except (InvalidTag, ValueError) as e:
        raise WrongPasswordError(
            "this vault key was wrapped with a different password; log in again with "
            "the password that was current when the vault was created"
        ) from e


def _expand(seed: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(seed)
