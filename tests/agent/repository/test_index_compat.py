"""The compact blob index answers as the old in-memory one did, bitmaps over it answer
as sets, and a vault written before it opens, verifies and restores after it."""

from __future__ import annotations

import os
import shutil
import tracemalloc
from pathlib import Path
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from comet.agent.maintenance.check import check
from comet.agent.maintenance.walk import BlobSet
from comet.agent.repository import Repository, index
from comet.agent.repository.format import BlobType
from comet.agent.repository.index import BlobIndex
from comet.agent.repository.pack import PackEntry
from comet.agent.repository.tree import NodeType
from comet.agent.storage.local import LocalStorage

from .data.make_v1_vault import VAULT_KEY, source_files
from .legacy_index import LegacyBlobIndex

V1_VAULT = Path(__file__).parent / "data" / "v1-vault"

# Ids share 8-byte prefixes often (the part the new index keeps in memory), so prefix
# collisions, which a random 32-byte id never makes, are exercised on every run.
_PREFIXES = [bytes([p]) * 8 for p in range(3)]
_ids = st.builds(
    lambda prefix, tail: prefix + tail,
    st.sampled_from(_PREFIXES),
    st.binary(min_size=24, max_size=24),
) | st.binary(min_size=32, max_size=32)
_pack_ids = st.sampled_from([bytes([p]) * 32 for p in range(4)]) | st.binary(
    min_size=32, max_size=32
)
_entries = st.builds(
    PackEntry,
    _ids,
    st.sampled_from(BlobType),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
_packs = st.lists(st.tuples(_pack_ids, st.lists(_entries, max_size=8)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(_packs, min_size=1, max_size=4), probes=st.lists(_ids, max_size=10))
def test_compact_index_answers_as_the_old_one(
    batches: list[list[tuple[bytes, list[PackEntry]]]], probes: list[bytes]
) -> None:
    # Tiny buckets, spill buffer and read blocks: bucket splits, reads from both the
    # spill file and its unwritten tail, and blocks read before a later flush filled
    # them happen within a few dozen blobs.
    with (
        mock.patch.object(index, "_MAX_FILL", 1),
        mock.patch.object(index, "_MIN_BITS", 1),
        mock.patch.object(index, "_FLUSH", index._SPILL.size * 3),
        mock.patch.object(index, "_BLOCK_RECORDS", 4),
        mock.patch.object(index, "_BLOCKS_KEPT", 2),
    ):
        new, old = BlobIndex(), LegacyBlobIndex()
        for i, batch in enumerate(batches):
            if i % 2:
                for pack_id, entries in batch:
                    new.add_pack(pack_id, entries)
                    old.add_pack(pack_id, entries)
            else:
                new.add_many(batch)
                old.add_many(batch)
            so_far = [e.blob_id for b in batches[: i + 1] for _, entries in b for e in entries]
            for blob_id in so_far:
                assert new.lookup(blob_id) == old.lookup(blob_id)
        known = [e.blob_id for batch in batches for _, entries in batch for e in entries]
        for blob_id in known + probes + [b"short"]:
            assert new.lookup(blob_id) == old.lookup(blob_id)
            assert (blob_id in new) == (blob_id in old)
            loc = old.lookup(blob_id)
            assert new.pack_of(blob_id) == (None if loc is None else loc.pack_id)
        assert len(new) == len(old)
        assert new.packs() == old.packs()
        assert sorted(new.items()) == sorted(old.items())
        ordinals = sorted(n for n in map(new.ordinal, set(known)) if n is not None)
        assert ordinals == list(range(len(new)))


@settings(max_examples=30, deadline=None)
@given(
    indexed=st.lists(_ids, max_size=40), added=st.lists(_ids, max_size=40), probes=st.lists(_ids)
)
def test_a_blob_set_over_the_index_answers_as_a_set(
    indexed: list[bytes], added: list[bytes], probes: list[bytes]
) -> None:
    blob_index = BlobIndex()
    entries = [PackEntry(b, BlobType.DATA, 0, 1, 1) for b in indexed]
    blob_index.add_pack(b"p" * 32, entries[: len(entries) // 2])
    marks = BlobSet(blob_index)
    blob_index.add_pack(b"q" * 32, entries[len(entries) // 2 :])  # grows after the set
    plain: set[bytes] = set()
    for i, blob_id in enumerate(added + indexed[::2]):
        if i % 2:
            assert marks.add(blob_id) == (blob_id not in plain)
        else:
            marks.update([blob_id])
        plain.add(blob_id)
        assert len(marks) == len(plain)
    claimed, plain_claimed = BlobSet(blob_index), set()
    for blob_id in indexed + added + probes:
        assert (blob_id in marks) == (blob_id in plain)
        assert marks.is_unindexed(blob_id) == (blob_id in plain and blob_id not in blob_index)
        expected = blob_id in plain and blob_id not in plain_claimed
        assert marks.claim(blob_id, claimed) == expected
        plain_claimed.update([blob_id] if expected else [])
    assert len(claimed) == len(plain_claimed)


def test_the_index_keeps_under_20_bytes_per_blob_in_memory() -> None:
    n = 24_000
    ids = os.urandom(32 * n)
    packs = [
        (
            os.urandom(32),
            [
                PackEntry(ids[j * 32 : j * 32 + 32], BlobType.DATA, 8, 100, 100)
                for j in range(i, i + 16)
            ],
        )
        for i in range(0, n, 16)
    ]
    tracemalloc.start()
    try:
        new = BlobIndex()
        new.add_many(packs)
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(new) == n
    assert used / n < 20, used / n
    loc = new.lookup(packs[7][1][3].blob_id)
    assert loc is not None and loc.pack_id == packs[7][0]
    assert new.lookup(os.urandom(32)) is None


def _read_file(repo: Repository, tree_id: bytes, path: str) -> bytes:
    *dirs, name = path.split("/")
    tree = repo.load_tree(tree_id)
    for d in dirs:
        (node,) = [n for n in tree.nodes if n.name == d]
        assert node.subtree is not None
        tree = repo.load_tree(node.subtree)
    (node,) = [n for n in tree.nodes if n.name == name]
    assert node.type == NodeType.FILE
    return b"".join(repo.read_blob(BlobType.DATA, b) for b in node.content)


def test_a_vault_written_before_the_compact_index_opens_and_verifies(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    shutil.copytree(V1_VAULT, vault)
    repo = Repository.open(LocalStorage(vault), VAULT_KEY)
    result = check(repo, read_data=True)
    assert result.ok, result.problems
    assert result.packs_read == result.packs > 0
    snapshots = sorted(
        (repo.load_snapshot(o.key.rsplit("/", 1)[-1]) for o in repo.storage.list("snapshots/")),
        key=lambda s: s.start_ns,
    )
    assert len(snapshots) == 2
    for generation, snapshot in enumerate(snapshots):
        # The source directory sits below the components of its absolute path.
        (source,) = snapshot.paths
        tree_id = snapshot.tree
        for name in source.strip("/").split("/"):
            (node,) = [n for n in repo.load_tree(tree_id).nodes if n.name == name]
            assert node.subtree is not None
            tree_id = node.subtree
        for path, data in source_files(generation).items():
            assert _read_file(repo, tree_id, path) == data


def test_a_block_read_before_a_flush_is_read_again_once_the_flush_fills_it() -> None:
    with (
        mock.patch.object(index, "_FLUSH", index._SPILL.size * 2),
        mock.patch.object(index, "_BLOCK_RECORDS", 8),
    ):
        ids = [bytes([i]) * 32 for i in range(1, 13)]
        blobs = BlobIndex()
        for n, blob_id in enumerate(ids):  # one blob a pack: flushed every second blob
            blobs.add_pack(bytes([n]) * 32, [PackEntry(blob_id, BlobType.DATA, n, 10, 20)])
            for m, seen in enumerate(ids[: n + 1]):
                found = blobs.lookup(seen)
                assert found is not None and found.offset == m, (n, m)
