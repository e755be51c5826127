"""Limits on what callers may send, checked before any database work.

Every name and free-text field has a length limit and a character policy: no NUL,
no control characters (line breaks only where a field is documented to hold
several lines). A refused value raises InvalidRequestError with a message that
names the field and the rule, never echoing the value itself (it may be huge)."""

from __future__ import annotations

import re
import unicodedata

from comet.server.errors import InvalidRequestError

USERNAME_MAX = 255
USERNAME_RE = re.compile(rf"^[A-Za-z0-9_.@-]{{1,{USERNAME_MAX}}}$")
NAME_MAX = 255  # device names and similar labels
SHORT_TEXT_MAX = 128  # os, arch, timezone, client version
DETAILS_MAX = 4096
AUTH_KEY_BYTES = 32
DEVICE_ID_MAX = 64
TOTP_CODE_MAX = 16
TOKEN_MAX = 512


def username(value: str) -> str:
    if len(value) > USERNAME_MAX or not USERNAME_RE.match(value):
        raise InvalidRequestError(
            f"a username is 1-{USERNAME_MAX} characters of letters, digits and _ . @ -"
        )
    return value


def text(value: str, *, field: str, max_len: int, required: bool = False) -> str:
    """A one-line free-text value: at most ``max_len`` characters, no control or
    unassigned characters."""
    if len(value) > max_len:
        raise InvalidRequestError(f"{field} is longer than {max_len} characters")
    if required and not value.strip():
        raise InvalidRequestError(f"{field} must not be empty")
    if any(_refused(ch) for ch in value):
        raise InvalidRequestError(f"{field} must not contain control characters")
    return value


def auth_key(value: bytes) -> bytes:
    if len(value) != AUTH_KEY_BYTES:
        raise InvalidRequestError(f"the authentication key must be {AUTH_KEY_BYTES} bytes")
    return value


def totp_code(value: str) -> str:
    if len(value) > TOTP_CODE_MAX or not all(ch.isdigit() or ch == " " for ch in value):
        raise InvalidRequestError("a two-factor code is 6 digits")
    return value


def device_id(value: str) -> str:
    return text(value, field="the device id", max_len=DEVICE_ID_MAX)


def truncate(value: str, max_len: int) -> str:
    """For values kept rather than refused (audit rows): cut to ``max_len``."""
    if len(value) <= max_len:
        return value
    return value[: max_len - 1] + "…"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clean(value: str, max_len: int, *, lines: bool = False) -> str:
    """For free text kept rather than refused (log lines, audit rows): cut to
    ``max_len``, with NUL and other control characters (but line breaks and tabs
    where ``lines``) replaced by U+FFFD."""
    pattern = _CONTROL_BUT_LINES if lines else _CONTROL
    return pattern.sub("\ufffd", truncate(value, max_len))


def _refused(ch: str) -> bool:
    # Cc: C0/C1 controls incl. NUL; Cs: lone surrogates; Cn: unassigned.
    return unicodedata.category(ch) in ("Cc", "Cs", "Cn")
