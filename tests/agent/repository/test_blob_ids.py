"""Blob ids: the keyed BLAKE3 of ``type byte ‖ content``, whichever way the content is
fed to the hasher (inputs under 4 KiB go in pieces that keep the interpreter lock)."""

from __future__ import annotations

import os

import pytest
from blake3 import blake3

from comet.agent.repository import crypto
from comet.agent.repository.crypto import MasterKeys, Sealer
from comet.agent.repository.format import BlobType

SIZES = [0, 1, 2046, 2047, 2048, 2049, 4094, 4095, 4096, 16383, 16384, 16385, 100_000]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("blob_type", list(BlobType))
def test_an_id_is_the_keyed_blake3_of_the_type_and_content(size: int, blob_type: BlobType) -> None:
    keys = MasterKeys.generate()
    sealer = Sealer(keys)
    data = os.urandom(size)
    expected = blake3(bytes([blob_type]) + data, key=keys.blob_id).digest()
    assert sealer.blob_id(blob_type, data) == expected
    assert sealer.blob_id(blob_type, memoryview(b"xx" + data)[2:]) == expected
    assert sealer.blob_id(blob_type, bytearray(data)) == expected


def test_the_piecewise_range_is_the_one_that_would_let_go_of_the_lock() -> None:
    # blake3 releases the lock from 2048 bytes: every piece must stay below that.
    assert crypto._HASH_PIECE < 2048
    assert crypto._HASH_PIECE < crypto._HASH_WHOLE_FROM
