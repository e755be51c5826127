"""Magic bytes, format versions and algorithm ids of the repository format.

Every constant of ``docs/format.md`` is registered here once; ids are never reused.
"""

from __future__ import annotations

import enum
from typing import Final

from comet.agent.errors import IntegrityError, UnsupportedFormatError

FORMAT_VERSION: Final = 1

MAGIC_CONFIG: Final = b"CMTC"
MAGIC_KEY: Final = b"CMTK"
MAGIC_PACK: Final = b"CMTP"
MAGIC_PACK_TRAILER: Final = b"CMTT"
MAGIC_INDEX: Final = b"CMTI"
MAGIC_SNAPSHOT: Final = b"CMTS"
MAGIC_LOCK: Final = b"CMTL"

ID_SIZE: Final = 32
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
KEY_SIZE: Final = 32

CHUNK_MIN: Final = 256 * 1024
CHUNK_AVG: Final = 1024 * 1024
CHUNK_MAX: Final = 4 * 1024 * 1024
PACK_TARGET_SIZE: Final = 16 * 1024 * 1024
ZSTD_LEVEL: Final = 3


class BlobType(enum.IntEnum):
    DATA = 0
    TREE = 1


class Compression(enum.IntEnum):
    NONE = 0
    ZSTD = 1


class CipherAlgorithm(enum.IntEnum):
    AES_256_GCM = 1


class BlobIdAlgorithm(enum.IntEnum):
    KEYED_BLAKE3 = 1


class ChunkerAlgorithm(enum.IntEnum):
    FASTCDC2020_SEEDED = 1


class KeyWrapAlgorithm(enum.IntEnum):
    AES_256_GCM = 1


BLOB_AAD_VERSION: Final = 1


def header(magic: bytes, version: int = FORMAT_VERSION) -> bytes:
    """The 5-byte ``magic ‖ version`` prefix of an object."""
    return magic + bytes([version])


def check_header(data: bytes | memoryview, magic: bytes, what: str) -> int:
    """Check ``data`` starts with ``magic`` and a known version; return the version."""
    if len(data) < 5 or bytes(data[:4]) != magic:
        raise IntegrityError(f"{what}: not a Comet {magic.decode()} object (bad magic bytes)")
    version = data[4]
    if version < 1 or version > FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"{what}: format version {version} is not supported (this agent knows "
            f"up to {FORMAT_VERSION}); upgrade the agent"
        )
    return version
