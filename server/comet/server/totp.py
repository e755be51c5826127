"""Time-based one-time passwords (RFC 6238: SHA-1, 6 digits, 30 s steps), the kind
every authenticator app understands."""

from __future__ import annotations

import base64
import hmac
import os
from datetime import datetime

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP

STEP_SECONDS = 30
DIGITS = 6
# Codes from one step before and after are accepted, for clock drift.
DRIFT_STEPS = 1
ISSUER = "Comet"


def new_secret() -> str:
    """A new shared secret, base32 as authenticator apps expect it."""
    return base64.b32encode(os.urandom(20)).decode("ascii")


def _totp(secret: str) -> TOTP:
    return TOTP(base64.b32decode(secret), DIGITS, SHA1(), STEP_SECONDS, enforce_key_length=False)


def provisioning_uri(secret: str, username: str) -> str:
    return _totp(secret).get_provisioning_uri(username, ISSUER)


def code_at(secret: str, when: datetime) -> str:
    return _totp(secret).generate(int(when.timestamp())).decode("ascii")


def matching_step(secret: str, code: str, when: datetime) -> int | None:
    """The time step whose code equals ``code`` (within the drift allowance), or None."""
    totp = _totp(secret)
    now = int(when.timestamp())
    code = code.strip().replace(" ", "")
    for drift in (0, -DRIFT_STEPS, DRIFT_STEPS):
        at = now + drift * STEP_SECONDS
        if hmac.compare_digest(totp.generate(at), code.encode()):
            return at // STEP_SECONDS
    return None
