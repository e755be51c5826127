"""The write pipeline's memory bounds: packs are filled in unnamed temporary files (the
stored bytes and ids are unchanged), and blobs waiting to be sealed are bounded in
bytes, not in count."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from blake3 import blake3

from comet.agent.repository import Repository
from comet.agent.repository.blob_writer import SEAL_QUEUE_BYTES
from comet.agent.repository.format import BlobType
from comet.agent.repository.pack import PackReader
from comet.agent.storage.local import LocalStorage

VAULT_KEY = bytes(range(32))
MIB = 1 << 20


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_spooled_packs_store_the_same_bytes_and_leave_nothing_open(tmp_path: Path) -> None:
    repo = Repository.init(LocalStorage(tmp_path / "vault"), VAULT_KEY)
    blobs = [os.urandom(10_000 + 997 * i) for i in range(40)]
    with repo.blob_writer(pack_size=64 * 1024) as writer:  # the index opens its spill file
        warm = os.urandom(1000)
        writer.add(BlobType.DATA, repo.sealer.blob_id(BlobType.DATA, warm), warm)
        writer.flush()
    fds = _open_fds()
    with repo.blob_writer(pack_size=64 * 1024) as writer:
        ids = []
        for data in blobs:
            blob_id = repo.sealer.blob_id(BlobType.DATA, data)
            writer.add(BlobType.DATA, blob_id, data)
            ids.append(blob_id)
        writer.flush()
    assert _open_fds() == fds  # every spool file was closed
    packs = sorted((tmp_path / "vault" / "data").rglob("*"))
    packs = [p for p in packs if p.is_file()]
    assert len(packs) > 5
    reader = PackReader(repo.storage, repo.sealer)
    listed = 0
    for path in packs:
        # The id hashed while the pack was spooled is the hash of the stored file.
        assert blake3(path.read_bytes()).hexdigest() == path.name
        listed += len(reader.read_entries(bytes.fromhex(path.name)))
    assert listed == len(blobs) + 1  # and the warm-up blob
    reopened = Repository.open(LocalStorage(tmp_path / "vault"), VAULT_KEY)
    assert [reopened.read_blob(BlobType.DATA, i) for i in ids] == blobs


@pytest.mark.timeout(60)
def test_blobs_waiting_to_be_sealed_are_bounded_in_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repository.init(LocalStorage(tmp_path / "vault"), VAULT_KEY)
    release = threading.Event()
    real_seal = repo.sealer.seal_blob

    def stalled_seal(blob_type: BlobType, blob_id: bytes, data: bytes) -> bytes:
        release.wait(30)  # storage stalls: nothing sealed leaves the queue
        return real_seal(blob_type, blob_id, data)

    monkeypatch.setattr(repo.sealer, "seal_blob", stalled_seal)
    blobs = [os.urandom(MIB) for _ in range(SEAL_QUEUE_BYTES // MIB + 4)]
    accepted = []
    with repo.blob_writer() as writer:

        def add_all() -> None:
            for data in blobs:
                writer.add(BlobType.DATA, repo.sealer.blob_id(BlobType.DATA, data), data)
                accepted.append(len(data))

        adder = threading.Thread(target=add_all)
        adder.start()
        deadline = time.monotonic() + 20
        while sum(accepted) < SEAL_QUEUE_BYTES and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # give the adder time to overrun the bound, if it could
        assert sum(accepted) == SEAL_QUEUE_BYTES
        release.set()
        adder.join(20)
        assert len(accepted) == len(blobs)
        # One blob bigger than the whole bound still goes through on its own.
        huge = os.urandom(SEAL_QUEUE_BYTES + MIB)
        writer.add(BlobType.DATA, repo.sealer.blob_id(BlobType.DATA, huge), huge)
        writer.flush()
    reopened = Repository.open(LocalStorage(tmp_path / "vault"), VAULT_KEY)
    assert reopened.read_blob(BlobType.DATA, repo.sealer.blob_id(BlobType.DATA, huge)) == huge
    assert len(reopened.index) == len(blobs) + 1


def test_many_small_blobs_are_indexed_as_they_go_not_all_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack of small files holds thousands of blobs: an index file is written once
    enough blobs wait for one, not only every INDEX_EVERY_PACKS packs, so a first backup
    of many small files does not keep every new blob's entry until it ends."""
    from comet.agent.repository import blob_writer

    monkeypatch.setattr(blob_writer, "INDEX_EVERY_BLOBS", 100)
    repo = Repository.init(LocalStorage(tmp_path / "vault"), VAULT_KEY)
    blobs = [os.urandom(200) + i.to_bytes(4, "big") for i in range(1000)]
    with repo.blob_writer(pack_size=16 * 1024) as writer:
        for data in blobs:
            writer.add(BlobType.DATA, repo.sealer.blob_id(BlobType.DATA, data), data)
        writer._submit_batch()
        deadline = time.monotonic() + 30
        while len(writer.index_ids) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(writer.index_ids) >= 3, "indexes were held back for the end"
        writer.flush()
    reopened = Repository.open(LocalStorage(tmp_path / "vault"), VAULT_KEY)
    assert all(
        reopened.read_blob(BlobType.DATA, repo.sealer.blob_id(BlobType.DATA, d)) == d for d in blobs
    )
