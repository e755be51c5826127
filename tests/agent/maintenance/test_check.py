"""Check (structure and deep verify) and index rebuilding on real repositories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from comet.agent.backup import BackupOptions
from comet.agent.errors import IntegrityError
from comet.agent.maintenance import ProblemKind, Severity, check, rebuild_indexes
from comet.agent.repository import Repository
from comet.agent.repository.pack import pack_key
from comet.agent.storage.local import LocalStorage
from comet.agent.storage.memory import MemoryStorage
from tests.agent.maintenance.conftest import VAULT_KEY, Source


def _vault(repo: Repository, source: Source) -> tuple[bytes, bytes, bytes]:
    """s1: a, b; s2: a, b, c; s3 (another item): b only."""
    source.write("a")
    source.write("b")
    s1 = source.backup(repo)
    source.write("c")
    s2 = source.backup(repo)
    for name in "ac":
        source.remove(name)
    s3 = source.backup(repo, BackupOptions("item-2", "device-1", hostname="host"))
    return s1, s2, s3


def _first_blob(repo: Repository, source: Source, snapshot_id: bytes, name: str) -> bytes:
    tree = repo.load_tree(repo.load_snapshot(snapshot_id).tree)
    for part in (*source.root.parts[1:], name):
        (node,) = [n for n in tree.nodes if n.name == part]
        if node.subtree is not None:
            tree = repo.load_tree(node.subtree)
    return node.content[0]


def test_clean_vault_checks_clean(repo: Repository, source: Source) -> None:
    _vault(repo, source)
    result = check(repo, read_data=True)
    assert result.ok and result.problems == () and result.report.affected == ()
    assert result.snapshots == 3 and result.packs_read == result.packs >= 2
    assert result.bytes_read == sum(o.size for o in repo.storage.list("data/"))


def test_flipped_byte_names_pack_snapshots_and_paths(
    tmp_path: Path, storage: MemoryStorage, repo: Repository, source: Source
) -> None:
    s1, s2, s3 = _vault(repo, source)
    blob = _first_blob(repo, source, s1, "a")
    loc = repo.locate(blob)
    key = pack_key(loc.pack_id)
    data = bytearray(storage.get(key))
    data[loc.offset + loc.length // 2] ^= 0x01
    storage.put(key, bytes(data))

    structure = check(repo)  # sizes are right and trees readable: no data was read
    assert structure.ok

    result = check(repo, read_data=True)
    assert not result.ok
    kinds = {(p.kind, p.subject) for p in result.errors}
    assert (ProblemKind.BLOB_DAMAGED, blob.hex()) in kinds
    assert (ProblemKind.PACK_DAMAGED, key) in kinds
    assert result.report.damaged_packs == (loc.pack_id,)
    assert result.report.lost_blobs == (blob,)
    a_path = str(source.root / "a")
    assert {a.snapshot_id: a.paths for a in result.report.affected} == {
        s1: (a_path,),
        s2: (a_path,),
    }
    assert s3 not in result.report.affected_snapshot_ids

    # Files outside the damaged blob still restore, from the same pack.
    source.assert_restores(repo, s2, tmp_path / "b-only", names=["b", "c"])
    source.assert_restores(repo, s3, tmp_path / "s3")
    with pytest.raises(IntegrityError):
        source.assert_restores(repo, s1, tmp_path / "a", names=["a"])


def test_structure_check_detects_missing_pack(
    tmp_path: Path, storage: MemoryStorage, repo: Repository, source: Source
) -> None:
    _, s2, _ = _vault(repo, source)
    blob = _first_blob(repo, source, s2, "c")
    pack_id = repo.locate(blob).pack_id
    storage.delete(pack_key(pack_id))
    result = check(repo, read_data=False)
    assert not result.ok and result.packs_read == 0
    assert (ProblemKind.PACK_MISSING, pack_key(pack_id)) in {
        (p.kind, p.subject) for p in result.errors
    }
    affected = {a.snapshot_id: a.paths for a in result.report.affected}
    assert s2 in affected and str(source.root / "c") in affected[s2]
    # a deep verify of the same vault reports the same loss
    deep = check(repo, read_data=True)
    assert s2 in deep.report.affected_snapshot_ids


def test_truncated_pack_and_leftover_pack(
    storage: MemoryStorage, repo: Repository, source: Source
) -> None:
    _vault(repo, source)
    pack_id = sorted(repo.index.packs())[0]
    key = pack_key(pack_id)
    storage.put(key, storage.get(key)[:-1])
    leftover = b"\x11" * 32
    storage.put(pack_key(leftover), b"junk")
    result = check(repo)
    by_kind = {p.kind: p for p in result.problems}
    assert by_kind[ProblemKind.PACK_SIZE].subject == key
    assert by_kind[ProblemKind.PACK_UNINDEXED].severity == Severity.WARNING
    assert by_kind[ProblemKind.PACK_UNINDEXED].subject == pack_key(leftover)


def test_rebuild_after_every_index_is_deleted(tmp_path: Path, source: Source) -> None:
    storage = LocalStorage(tmp_path / "vault")
    repo = Repository.init(storage, VAULT_KEY)
    s1, s2, s3 = _vault(repo, source)
    for obj in list(storage.list("index/")):
        storage.delete(obj.key)
    garbage = os.urandom(32)
    storage.put(pack_key(garbage), os.urandom(200))  # a damaged pack: reported, not fatal

    reopened = Repository.open(storage, VAULT_KEY)
    assert len(reopened.index) == 0
    assert not check(reopened).ok  # every referenced blob is in no index

    result = rebuild_indexes(reopened)
    assert [d.pack_id for d in result.damaged_packs] == [garbage]
    assert result.packs_indexed == len(list(storage.list("data/"))) - 1
    assert result.index_files_written >= 1 and result.index_files_deleted == 0

    fresh = Repository.open(storage, VAULT_KEY)
    for i, snapshot_id in enumerate((s1, s2, s3)):
        source.assert_restores(fresh, snapshot_id, tmp_path / f"out{i}")
    after = check(fresh, read_data=True)
    assert after.ok
    assert [p.kind for p in after.problems] == [ProblemKind.PACK_UNINDEXED]

    # Rebuilding again replaces the index files it wrote.
    old = {o.key for o in storage.list("index/")}
    again = rebuild_indexes(fresh)
    assert again.index_files_deleted == len(old)
    assert not old & {o.key for o in storage.list("index/")}


def test_rebuild_keeps_old_entries_of_a_pack_with_damaged_trailer(
    tmp_path: Path, storage: MemoryStorage, repo: Repository, source: Source
) -> None:
    s1, s2, s3 = _vault(repo, source)
    blob = _first_blob(repo, source, s1, "a")
    key = pack_key(repo.locate(blob).pack_id)
    data = bytearray(storage.get(key))
    data[-10] ^= 0x01  # inside the encrypted trailer: its tag no longer matches
    storage.put(key, bytes(data))
    result = rebuild_indexes(repo)
    assert [d.pack_id for d in result.damaged_packs] == [repo.locate(blob).pack_id]
    assert result.carried_over == 1
    for i, snapshot_id in enumerate((s1, s2, s3)):
        source.assert_restores(repo, snapshot_id, tmp_path / f"out{i}")
    deep = check(repo, read_data=True)
    assert [(p.kind, p.subject) for p in deep.errors] == [(ProblemKind.PACK_DAMAGED, key)] * 2
    assert deep.report.affected == ()  # the blobs themselves are intact
