"""Blob compression: incompressible blobs skip the zstd pass, everything round-trips."""

from __future__ import annotations

import os

import pytest

from comet.agent.repository import crypto as crypto_module
from comet.agent.repository.crypto import MasterKeys, Sealer
from comet.agent.repository.format import BlobType, Compression


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(MasterKeys.generate())


def _roundtrip(sealer: Sealer, data: bytes) -> int:
    blob_id = sealer.blob_id(BlobType.DATA, data)
    stored = sealer.seal_blob(BlobType.DATA, blob_id, data)
    assert sealer.open_blob(BlobType.DATA, blob_id, stored, "test") == data
    return stored[0]


def test_random_blob_is_stored_without_a_zstd_pass(
    sealer: Sealer, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(1 << 20)
    calls: list[int] = []
    real = crypto_module._ZstdContexts

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            inner = self.compressor

            class Wrapper:
                def compress(self, data: bytes) -> bytes:
                    calls.append(len(data))
                    return bytes(inner.compress(data))

            self.compressor = Wrapper()

    monkeypatch.setattr(sealer, "_zstd", Counting())
    assert _roundtrip(sealer, data) == Compression.NONE
    assert calls == []
    assert _roundtrip(sealer, b"text line\n" * 100_000) == Compression.ZSTD
    assert calls == [1_000_000]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"x",
        os.urandom(1000),
        os.urandom(200_000),
        b"a" * 200_000,
        os.urandom(100_000) + b"a" * 300_000,  # a random start, compressible middle
        bytes(4 << 20),
        os.urandom(64 * 1024 - 1),  # joined after encryption
        os.urandom(64 * 1024),  # encrypted in place (encrypt_into)
    ],
    ids=[
        "empty",
        "one",
        "small-random",
        "random",
        "runs",
        "mixed",
        "zeros",
        "below-in-place",
        "in-place",
    ],
)
def test_blobs_round_trip(sealer: Sealer, data: bytes) -> None:
    comp = _roundtrip(sealer, data)
    if len(data) > 1000 and data.count(data[:1]) == len(data):
        assert comp == Compression.ZSTD


def test_a_4_mib_chunk_is_compressed_with_a_512_kib_window_and_a_bounded_context(
    sealer: Sealer,
) -> None:
    """Each sealing thread keeps its zstd context: with level 3's own window (2 MiB
    for big inputs) one context held 3.6 MB after a 4 MiB chunk."""
    import zstandard

    data = b"".join(b"%08d some text that compresses " % i for i in range(130_000))[: 4 << 20]
    blob_id = sealer.blob_id(BlobType.DATA, data)
    stored = sealer.seal_blob(BlobType.DATA, blob_id, data)
    assert stored[0] == Compression.ZSTD
    assert sealer.open_blob(BlobType.DATA, blob_id, stored, "test") == data
    compressor = sealer._zstd.compressor
    frame = compressor.compress(data)
    assert zstandard.get_frame_parameters(frame).window_size <= 512 * 1024
    assert zstandard.get_frame_parameters(frame).content_size == len(data)
    assert compressor.memory_size() < 2_500_000
