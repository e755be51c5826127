"""``BlobWriter.has_all``: what an unchanged re-run asks of every file's content, in one
index pass. It must answer as ``has`` of each blob does, and leave ``relied_packs``
(the packs confirmed present before the commit) holding the same pack ids."""

from __future__ import annotations

import os

from comet.agent.repository import Repository
from comet.agent.repository.format import BlobType
from comet.agent.repository.index import BlobIndex
from comet.agent.repository.pack import PackEntry
from comet.agent.storage.memory import MemoryStorage

KEY = b"k" * 32


def _stored(repo: Repository, count: int) -> list[bytes]:
    """``count`` data blobs, each stored in a pack of its own."""
    ids = []
    with repo.blob_writer(pack_size=1) as writer:
        for i in range(count):
            data = f"blob {i}".encode()
            blob_id = repo.sealer.blob_id(BlobType.DATA, data)
            writer.add(BlobType.DATA, blob_id, data)
            ids.append(blob_id)
        writer.flush()
    return ids


def test_has_all_answers_as_has_of_each_and_relies_on_the_same_packs() -> None:
    repo = Repository.init(MemoryStorage(), KEY)
    stored = _stored(repo, 6)
    missing = os.urandom(32)
    cases = [[], stored[:1], stored[1:4], [stored[5], stored[0], stored[5]], [*stored, missing]]
    for ids in cases:
        one, each = repo.blob_writer(), repo.blob_writer()
        try:
            assert one.has_all(ids) == all(each.has(b) for b in ids)
            if all(b != missing for b in ids):
                assert one.relied_packs == each.relied_packs
                assert len(one.relied_packs) == len({repo.index.pack_of(b) for b in ids})
            assert not one.has_all([missing]) and not one.has_all([b"short"])
        finally:
            one.close()
            each.close()


def test_queued_blobs_count_as_present_and_rely_on_no_pack_yet() -> None:
    repo = Repository.init(MemoryStorage(), KEY)
    (stored,) = _stored(repo, 1)
    with repo.blob_writer() as writer:
        data = b"queued, not yet in a stored pack"
        queued = repo.sealer.blob_id(BlobType.DATA, data)
        writer.add(BlobType.DATA, queued, data)
        assert writer.has_all([queued]) and writer.relied_packs == set()
        assert writer.has_all([queued, stored])
        assert writer.relied_packs == {repo.index.pack_of(stored)}
        writer.flush()


def test_a_reloaded_index_numbers_its_packs_afresh() -> None:
    """Pack numbers belong to one index: after the repository loads a new index the
    packs relied on are named by that index's numbers, not the old ones."""
    repo = Repository.init(MemoryStorage(), KEY)
    blob = os.urandom(32)
    first, second = os.urandom(32), os.urandom(32)
    old = BlobIndex()
    old.add_pack(first, [PackEntry(blob, BlobType.DATA, 0, 10, 10)])
    new = BlobIndex()
    new.add_pack(second, [PackEntry(blob, BlobType.DATA, 0, 10, 10)])
    with repo.blob_writer() as writer:
        repo.index = old
        assert writer.has_all([blob])
        repo.index = new
        assert writer.has_all([blob])
        assert writer.relied_packs == {first, second}
    assert new.pack_numbers([blob]) == [0] and new.pack_id(0) == second
