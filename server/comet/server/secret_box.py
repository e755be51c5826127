"""Encryption of secrets at rest (vault credentials, TOTP secrets) with the server key.

The server key is 32 random bytes kept outside the database: in the file named by
``COMET_SERVER_SECRET_KEY_FILE`` (or ``--secret-key-file``), else ``secret.key`` in the
server data directory, created once with mode 0600. Every server instance that shares
one database must be given the same key file, or it cannot read what the others wrote.

A sealed value is text, ``enc1:`` followed by base64 of a 12-byte nonce and the
AES-256-GCM ciphertext. The associated data names what the value belongs to (for
example ``vault:<user>:<vault>:s3.secret_key``), so a ciphertext copied into another
account or field does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from comet.server.errors import DatabaseSetupError, ServerError

PREFIX = "enc1:"
KEY_BYTES = 32


class SecretKeyError(ServerError):
    """A sealed value could not be opened: wrong server key or damaged data."""

    code = "secret_key"


def load_or_create_key(path: Path, *, create: bool) -> bytes:
    """Reads the server key (64 hex digits, or 32 raw bytes); with ``create``, makes
    a new one (mode 0600) when the file does not exist yet."""
    if not path.exists():
        if not create:
            raise DatabaseSetupError(f"the server secret key file {path} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(KEY_BYTES).hex() + "\n")
    data = path.read_bytes()
    if len(data) == KEY_BYTES:
        return data
    try:
        key = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError) as e:
        raise DatabaseSetupError(f"{path}: not a server secret key (64 hex digits)") from e
    if len(key) != KEY_BYTES:
        raise DatabaseSetupError(f"{path}: a server secret key is 32 bytes (64 hex digits)")
    return key


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("the server secret key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, *, context: str) -> str:
        if not is_sealed(sealed):
            raise SecretKeyError("a stored secret is not in the sealed format")
        try:
            raw = base64.b64decode(sealed[len(PREFIX) :], validate=True)
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as e:
            raise SecretKeyError(
                "a stored secret cannot be decrypted: is this server using the same "
                "secret key file as the one that stored it?"
            ) from e


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)
