"""Keys and sealing: the master key set, its wrapping by the vault key, blob ids, and
the encryption of blobs and small objects (AES-256-GCM, zstd before encryption).

Thread-safe: zstd contexts are per thread; AESGCM objects are stateless.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import zstandard
from blake3 import blake3

from comet.agent.errors import IntegrityError, UnsupportedFormatError, WrongVaultKeyError
from comet.agent.repository.format import (
    BLOB_AAD_VERSION,
    KEY_SIZE,
    MAGIC_KEY,
    NONCE_SIZE,
    TAG_SIZE,
    ZSTD_LEVEL,
    BlobType,
    Compression,
    KeyWrapAlgorithm,
    check_header,
    header,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

BLOB_OVERHEAD = 1 + NONCE_SIZE + TAG_SIZE

# Incompressible blobs (media, archives, encrypted data) are detected from small samples
# spread over the blob, each compressed at level 1: ~25 us for a 1 MiB random blob
# instead of a ~300 us level-3 pass, and one ~10 us sample for compressible data.
_PROBE_SAMPLE = 4 * 1024
_PROBE_SAMPLES = 8
_PROBE_MIN_SIZE = 128 * 1024
# blake3 lets go of the interpreter lock to hash 2048 bytes or more. For a small
# input that costs more than it gains: getting the lock back waits for whichever
# thread took it, up to the switch interval (5 ms). With two busy threads, hashing 4 KiB
# took 0.4-2.7 ms instead of 6 us. So inputs under 4 KiB are fed to it in pieces of
# 2047 bytes, which keep the lock (~1.5 us more alone). A first backup of 100,000
# files of 0-4 KiB ran 5-13 % faster (3 alternating pairs, in-process); with pieces up
# to 16 KiB the source corpus looked a little slower, so bigger inputs go in one update.
_HASH_PIECE = 2047
_HASH_WHOLE_FROM = 4 * 1024
# Blobs from this size are sealed into one buffer (``encrypt_into``); below it, joining
# the parts costs less time (~1.5 us a blob less) and the copy is small.
_SEAL_IN_PLACE_FROM = 64 * 1024


@dataclass(frozen=True)
class MasterKeys:
    """The repository's secret keys, fixed for its life."""

    encryption: bytes
    blob_id: bytes
    chunker: bytes

    @classmethod
    def generate(cls) -> MasterKeys:
        return cls(os.urandom(KEY_SIZE), os.urandom(KEY_SIZE), os.urandom(KEY_SIZE))

    @property
    def chunker_seed(self) -> int:
        """The 63-bit FastCDC gear seed (pyfastcdc shifts it left by one, so the top bit
        must be clear; never zero, which means 'unkeyed' to pyfastcdc)."""
        return (int.from_bytes(self.chunker[:8], "little") & ((1 << 63) - 1)) or 1


def _aead_api() -> tuple[type[AESGCM], type[Exception]]:
    """AES-GCM and its authentication error, imported on first use: the agent imports
    this module at start-up, and ``cryptography`` costs ~10 MiB resident while idle."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM, InvalidTag


def _check_vault_key(vault_key: bytes) -> None:
    if len(vault_key) != KEY_SIZE:
        raise WrongVaultKeyError(f"a vault key must be {KEY_SIZE} bytes, got {len(vault_key)}")


def wrap_keys(keys: MasterKeys, vault_key: bytes, repository_id: bytes) -> bytes:
    """Serialize ``keys`` as a key file sealed by ``vault_key`` (see docs/format.md)."""
    _check_vault_key(vault_key)
    prefix = header(MAGIC_KEY) + bytes([KeyWrapAlgorithm.AES_256_GCM])
    nonce = os.urandom(NONCE_SIZE)
    body = keys.encryption + keys.blob_id + keys.chunker
    aesgcm, _invalid = _aead_api()
    sealed = aesgcm(vault_key).encrypt(nonce, body, prefix + repository_id)
    return prefix + nonce + sealed


def unwrap_keys(data: bytes, vault_key: bytes, repository_id: bytes, what: str) -> MasterKeys:
    """Open a key file. Raises WrongVaultKeyError when the vault key does not open it."""
    _check_vault_key(vault_key)
    check_header(data, MAGIC_KEY, what)
    if len(data) < 6 or data[5] != KeyWrapAlgorithm.AES_256_GCM:
        raise UnsupportedFormatError(f"{what}: unknown key wrap algorithm")
    prefix = data[:6]
    nonce = data[6 : 6 + NONCE_SIZE]
    aesgcm, invalid_tag = _aead_api()
    try:
        body = aesgcm(vault_key).decrypt(nonce, data[6 + NONCE_SIZE :], prefix + repository_id)
    except invalid_tag:
        raise WrongVaultKeyError(
            "the vault key does not open this repository (wrong key, or a damaged key file)"
        ) from None
    if len(body) != 3 * KEY_SIZE:
        raise IntegrityError(f"{what}: key set has the wrong length")
    return MasterKeys(body[:KEY_SIZE], body[KEY_SIZE : 2 * KEY_SIZE], body[2 * KEY_SIZE :])


# zstd's level 3 sizes its window to the input, up to 2 MiB: a context that has
# compressed one 4 MiB chunk holds 3.6 MB, and each sealing thread keeps one. A 512 KiB
# window holds 2.1 MB and made source code 0.3 % bigger (readers accept any window).
_ZSTD_WINDOW_LOG = 19


class _ZstdContexts(threading.local):
    def __init__(self) -> None:
        params = zstandard.ZstdCompressionParameters.from_level(
            ZSTD_LEVEL, window_log=_ZSTD_WINDOW_LOG, write_content_size=1
        )
        self.compressor = zstandard.ZstdCompressor(compression_params=params)
        self.decompressor = zstandard.ZstdDecompressor()
        self.probe = zstandard.ZstdCompressor(level=1, write_content_size=False)


class Sealer:
    """Blob ids, blob sealing/opening and small-object sealing with one key set."""

    def __init__(self, keys: MasterKeys) -> None:
        self._keys = keys
        aesgcm, self._invalid_tag = _aead_api()
        self._aead = aesgcm(keys.encryption)
        self._zstd = _ZstdContexts()
        # Keyed hashers that have taken the type byte: a blob id copies one (cheaper
        # than keying a new hasher for every small file).
        self._id_hashers = {t: blake3(bytes([t]), key=keys.blob_id) for t in BlobType}

    def blob_id(self, blob_type: BlobType, data: bytes | memoryview) -> bytes:
        """The keyed BLAKE3 id of a plaintext blob."""
        h = self._id_hashers[blob_type].copy()
        size = len(data)
        if _HASH_PIECE < size < _HASH_WHOLE_FROM:
            view = memoryview(data)
            for start in range(0, size, _HASH_PIECE):
                h.update(view[start : start + _HASH_PIECE])
        else:
            h.update(data)
        return h.digest()

    def seal_blob(
        self, blob_type: BlobType, blob_id: bytes, data: bytes | memoryview
    ) -> bytes | bytearray:
        """Compress (when it shrinks) and encrypt a blob into its stored form."""
        body: bytes | memoryview
        comp, body = Compression.NONE, data
        if self._may_compress(data):
            compressed = self._zstd.compressor.compress(data)
            if len(compressed) < len(data):
                comp, body = Compression.ZSTD, compressed
        nonce = os.urandom(NONCE_SIZE)
        aad = bytes([BLOB_AAD_VERSION, blob_type, comp]) + blob_id
        if len(body) < _SEAL_IN_PLACE_FROM:
            return bytes([comp]) + nonce + self._aead.encrypt(nonce, body, aad)
        # Encrypted in place after the two header fields: joining them to the
        # ciphertext afterwards held a third full copy of the blob for a moment (12 MiB
        # for an incompressible 4 MiB chunk, on each sealing thread).
        stored = bytearray(1 + NONCE_SIZE + len(body) + TAG_SIZE)
        stored[0] = comp
        stored[1 : 1 + NONCE_SIZE] = nonce
        with memoryview(stored) as view:
            self._aead.encrypt_into(nonce, body, aad, view[1 + NONCE_SIZE :])
        return stored

    def _may_compress(self, data: bytes | memoryview) -> bool:
        """False if no sample of a large blob compresses (saves 1/64 or more)."""
        size = len(data)
        if size < _PROBE_MIN_SIZE:
            return True
        probe = self._zstd.probe
        step = size // _PROBE_SAMPLES
        for start in range(0, step * _PROBE_SAMPLES, step):
            sample = data[start : start + _PROBE_SAMPLE]
            if len(probe.compress(sample)) < _PROBE_SAMPLE - _PROBE_SAMPLE // 64:
                return True
        return False

    def open_blob(
        self, blob_type: BlobType, blob_id: bytes, stored: bytes | memoryview, where: str
    ) -> bytes:
        """Decrypt, decompress and verify a stored blob; IntegrityError names it."""
        if len(stored) < BLOB_OVERHEAD:
            raise IntegrityError(f"{_blob_name(blob_id, where)} is truncated")
        comp = stored[0]
        aad = bytes([BLOB_AAD_VERSION, blob_type, comp]) + blob_id
        try:
            body = self._aead.decrypt(stored[1 : 1 + NONCE_SIZE], stored[1 + NONCE_SIZE :], aad)
        except self._invalid_tag:
            raise IntegrityError(
                f"{_blob_name(blob_id, where)} is damaged (authentication failed)"
            ) from None
        if comp == Compression.ZSTD:
            try:
                plain: bytes = self._zstd.decompressor.decompress(body)
            except zstandard.ZstdError as e:
                raise IntegrityError(
                    f"{_blob_name(blob_id, where)} does not decompress: {e}"
                ) from e
        elif comp == Compression.NONE:
            plain = body
        else:
            raise UnsupportedFormatError(
                f"{_blob_name(blob_id, where)} uses unknown compression {comp}"
            )
        if self.blob_id(blob_type, plain) != blob_id:
            raise IntegrityError(f"{_blob_name(blob_id, where)} does not match its id")
        return plain

    def seal(self, prefix: bytes, body: bytes) -> bytes:
        """``prefix ‖ nonce ‖ AES-GCM(body)`` with the prefix as AAD (index, snapshot, lock)."""
        nonce = os.urandom(NONCE_SIZE)
        return prefix + nonce + self._aead.encrypt(nonce, body, prefix)

    def open(self, prefix_len: int, data: bytes, what: str) -> bytes:
        """Inverse of ``seal``; the caller has already checked the prefix's magic."""
        if len(data) < prefix_len + NONCE_SIZE + TAG_SIZE:
            raise IntegrityError(f"{what} is truncated")
        # Through a view: slicing the bytes copied the whole ciphertext, one more copy
        # of an index file (tens of bytes a blob) at the peak of opening a vault.
        view = memoryview(data)
        nonce = view[prefix_len : prefix_len + NONCE_SIZE]
        try:
            return self._aead.decrypt(nonce, view[prefix_len + NONCE_SIZE :], view[:prefix_len])
        except self._invalid_tag:
            raise IntegrityError(f"{what} is damaged (authentication failed)") from None


def _blob_name(blob_id: bytes, where: str) -> str:
    """How errors name a blob (built only when one is raised: opening a blob is done
    once per restored file)."""
    return f"blob {blob_id.hex()} in {where}"


def object_id(data: bytes) -> bytes:
    """The unkeyed BLAKE3 id of a stored pack, index or snapshot object."""
    return blake3(data).digest()
