"""The ``Storage`` protocol every vault backend implements, and its errors.

Keys are ``/``-separated relative names made of ``[A-Za-z0-9._-]`` segments (for example
``data/3f/3fa2...``); a backend maps them onto its own namespace (a directory, an S3
prefix, an SFTP path). Objects are immutable once written, apart from lock files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from comet.agent.errors import AgentError

_KEY_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class StorageError(AgentError):
    """A storage operation failed and retrying will not help."""

    code = "storage"


class TransientStorageError(StorageError):
    """A storage operation failed in a way that may succeed when retried
    (timeouts, connection resets, HTTP 5xx/429, throttling)."""

    code = "storage.transient"


class ObjectNotFoundError(StorageError):
    """The object does not exist."""

    code = "storage.not_found"


class InvalidKeyError(StorageError):
    """A key is not a well-formed storage key."""

    code = "storage.invalid_key"


@dataclass(frozen=True)
class ObjectInfo:
    """An object's size and, when the backend knows it, when the storage last wrote
    it (``mtime_ns``, by the storage's own clock: a file's mtime, S3's LastModified).
    Ages are only ever computed between two such storage times, never against a
    device's clock."""

    key: str
    size: int
    mtime_ns: int | None = None


def check_key(key: str) -> str:
    """Return ``key`` if it is a well-formed storage key, else raise InvalidKeyError.

    Segments ``.`` and ``..`` are refused so no backend can be steered outside its root.
    """
    if not _KEY_RE.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise InvalidKeyError(f"invalid storage key {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it may be passed to ``Storage.list``, else raise InvalidKeyError.

    A prefix is ``""``, a key, or a key followed by ``/``. It matches keys by plain string
    prefix: ``"data/3"`` matches ``data/3f/...`` and ``data/3a``.
    """
    if prefix:
        check_key(prefix.removesuffix("/"))
    return prefix


def check_range(key: str, size: int, offset: int, length: int | None) -> int:
    """Return how many bytes a ``get(key, offset, length)`` of a ``size``-byte object reads.

    Raises ValueError for a negative offset or length (a caller bug) and StorageError
    when the range reaches past the end of the object.
    """
    if offset < 0 or (length is not None and length < 0):
        raise ValueError(f"negative range offset={offset} length={length}")
    end = size if length is None else offset + length
    if offset > size or end > size:
        raise StorageError(f"range [{offset}, {end}) is beyond the end of {key!r} ({size} bytes)")
    return end - offset


# Names of in-flight uploads on file-like backends contain "~", which no key may contain,
# so a listing can always tell them apart from objects.
TEMP_MARKER = ".comet-tmp~"


def is_temp_name(name: str) -> bool:
    """Whether a file name is an in-flight upload (see TEMP_MARKER)."""
    return TEMP_MARKER in name


class Storage(Protocol):
    """Where a vault's objects live. Implementations must be safe to call from
    several threads at once."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any existing object.

        Atomic: a reader sees either the old object, or the whole new one, never a
        partial write, even if the process dies mid-call. Raises StorageError
        (TransientStorageError when a retry may help)."""
        ...

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """Return the object's bytes ``[offset, offset+length)`` (to the end when
        ``length`` is None). Raises ObjectNotFoundError when it does not exist, and
        StorageError if fewer bytes than asked could be read."""
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Return the object's size (and storage time). Raises ObjectNotFoundError when
        it does not exist."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object. Deleting a missing object is not an error (idempotent)."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix`` (a directory-like
        prefix such as ``"data/"`` or ``""`` for all), in no particular order. Objects
        written before the call starts are listed; a listing never yields partial
        (in-flight) uploads."""
        ...

    def remove_temporary(self, before_ns: int) -> tuple[str, ...]:
        """Delete leftovers of interrupted uploads (temp files named with TEMP_MARKER)
        that the storage last wrote before ``before_ns`` (a storage time, see
        ObjectInfo); return their names. Backends without such files return []."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...


def read_file(fd: int, size: int) -> bytes:
    """The first ``size`` bytes of the open file ``fd`` (StorageError if it is shorter)."""
    parts = []
    got = 0
    while got < size:
        more = os.pread(fd, size - got, got)
        if not more:
            raise StorageError(f"a file to upload came up short ({got} of {size} bytes)")
        parts.append(more)
        got += len(more)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def put_file(storage: Storage, key: str, fd: int, size: int) -> None:
    """Store the first ``size`` bytes of the open file ``fd`` under ``key``, as ``put``
    would. A backend (or wrapper) with a ``put_file(key, fd, size)`` method of its own
    streams the file without holding it in memory (``LocalStorage`` copies it in the
    kernel); any other gets it read into one buffer and ``put``."""
    streamed = getattr(storage, "put_file", None)
    if streamed is not None:
        streamed(key, fd, size)
    else:
        storage.put(key, read_file(fd, size))
