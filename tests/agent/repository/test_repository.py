"""Repository format: keys, blobs, packs, index, snapshots, locks."""

from __future__ import annotations

import io
import os
import random
import struct
from pathlib import Path

import pytest

from comet.agent.errors import (
    ChunkerUnavailableError,
    IntegrityError,
    LockedError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
    UnsupportedFormatError,
    WrongVaultKeyError,
)
from comet.agent.repository import Repository
from comet.agent.repository import chunker as chunker_module
from comet.agent.repository.format import BlobType
from comet.agent.repository.lock import STALE_AFTER_NS
from comet.agent.repository.pack import PackReader, pack_key
from comet.agent.repository.snapshot import Snapshot
from comet.agent.repository.tree import Node, NodeType, Tree
from comet.agent.storage.local import LocalStorage
from comet.agent.storage.memory import MemoryStorage

VAULT_KEY = bytes(range(32))


def _store(repo: Repository, blobs: list[bytes]) -> list[bytes]:
    ids = []
    with repo.blob_writer() as writer:
        for data in blobs:
            blob_id = repo.sealer.blob_id(BlobType.DATA, data)
            writer.add(BlobType.DATA, blob_id, data)
            ids.append(blob_id)
        writer.flush()
    return ids


def test_init_open_roundtrip(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    repo = Repository.init(storage, VAULT_KEY)
    blobs = [os.urandom(1000), b"hello" * 10000, b""]
    ids = _store(repo, blobs)
    reopened = Repository.open(LocalStorage(tmp_path), VAULT_KEY)
    assert reopened.id == repo.id
    assert reopened.chunker_seed == repo.chunker_seed
    assert [reopened.read_blob(BlobType.DATA, i) for i in ids] == blobs
    assert len(reopened.index) == 3


def test_wrong_vault_key_and_missing_repository() -> None:
    storage = MemoryStorage()
    with pytest.raises(RepositoryNotFoundError):
        Repository.open(storage, VAULT_KEY)
    Repository.init(storage, VAULT_KEY)
    with pytest.raises(WrongVaultKeyError) as info:
        Repository.open(storage, os.urandom(32))
    assert info.value.code == "repository.wrong_vault_key"
    with pytest.raises(RepositoryExistsError):
        Repository.init(storage, VAULT_KEY)


def test_unknown_format_version_is_refused() -> None:
    storage = MemoryStorage()
    Repository.init(storage, VAULT_KEY)
    config = storage.get("config")
    storage.put("config", config[:4] + bytes([99]) + config[5:])
    with pytest.raises(UnsupportedFormatError):
        Repository.open(storage, VAULT_KEY)


def _only_pack(storage: MemoryStorage) -> str:
    keys = [o.key for o in storage.list("data/")]
    assert len(keys) == 1
    return keys[0]


def test_flipped_byte_in_pack_names_the_blob() -> None:
    storage = MemoryStorage()
    repo = Repository.init(storage, VAULT_KEY)
    (blob_id,) = _store(repo, [os.urandom(5000)])
    key = _only_pack(storage)
    data = bytearray(storage.get(key))
    loc = repo.locate(blob_id)
    data[loc.offset + 100] ^= 0x01
    storage.put(key, bytes(data))
    with pytest.raises(IntegrityError) as info:
        repo.read_blob(BlobType.DATA, blob_id)
    assert blob_id.hex() in str(info.value)


def test_truncated_pack() -> None:
    storage = MemoryStorage()
    repo = Repository.init(storage, VAULT_KEY)
    ids = _store(repo, [os.urandom(5000), os.urandom(5000)])
    # Two seal threads fill the pack, so either blob may come first.
    ids.sort(key=lambda blob_id: repo.locate(blob_id).offset)
    key = _only_pack(storage)
    storage.put(key, storage.get(key)[:6000])
    assert repo.read_blob(BlobType.DATA, ids[0])  # the first blob is still whole
    with pytest.raises(IntegrityError, match=ids[1].hex()):
        repo.read_blob(BlobType.DATA, ids[1])
    pack_id = bytes.fromhex(key.rsplit("/", 1)[1])
    with pytest.raises(IntegrityError):
        PackReader(storage, repo.sealer).read_entries(pack_id)


def test_pack_trailer_lists_what_the_index_does() -> None:
    storage = MemoryStorage()
    repo = Repository.init(storage, VAULT_KEY)
    ids = _store(repo, [os.urandom(3000) for _ in range(5)])
    key = _only_pack(storage)
    pack_id = bytes.fromhex(key.rsplit("/", 1)[1])
    assert key == pack_key(pack_id)
    entries = PackReader(storage, repo.sealer).read_entries(pack_id)
    assert sorted(e.blob_id for e in entries) == sorted(ids)
    for e in entries:
        loc = repo.locate(e.blob_id)
        assert (loc.pack_id, loc.offset, loc.length) == (pack_id, e.offset, e.length)
        assert e.raw_length == 3000


def test_tree_and_snapshot_roundtrip() -> None:
    repo = Repository.init(MemoryStorage(), VAULT_KEY)
    node = Node(
        name=os.fsdecode(b"caf\xc3\xa9 \xff"),
        type=NodeType.FILE,
        mode=0o644,
        size=3,
        content=(b"\1" * 32,),
        xattrs=(("user.a", b"\0\1"),),
        link=("a", "b"),
    )
    tree = Tree((node, Node(name="d", type=NodeType.DIR, subtree=b"\2" * 32)))
    data = tree.encode()
    tree_id = repo.sealer.blob_id(BlobType.TREE, data)
    with repo.blob_writer() as writer:
        writer.add(BlobType.TREE, tree_id, data)
        writer.flush()
    loaded = repo.load_tree(tree_id)
    assert sorted(loaded.nodes, key=lambda n: n.name) == sorted(tree.nodes, key=lambda n: n.name)
    snap = Snapshot("item", "dev", "host", tree_id, 1, 2, paths=("/x",), total_bytes=3)
    snapshot_id = repo.save_snapshot(snap)
    assert repo.load_snapshot(snapshot_id) == snap
    assert repo.load_snapshot(snapshot_id.hex()[:10]).id == snapshot_id
    assert [s.id for s in repo.list_snapshots()] == [snapshot_id]
    with pytest.raises(SnapshotNotFoundError):
        repo.load_snapshot("00" * 32)


def test_same_bytes_as_data_and_tree_get_different_ids() -> None:
    repo = Repository.init(MemoryStorage(), VAULT_KEY)
    assert repo.sealer.blob_id(BlobType.DATA, b"x") != repo.sealer.blob_id(BlobType.TREE, b"x")


def test_chunker_is_keyed_and_stream_safe() -> None:
    data = os.urandom(12 << 20)
    a = Repository.init(MemoryStorage(), VAULT_KEY).new_chunker()
    b = Repository.init(MemoryStorage(), VAULT_KEY).new_chunker()

    def sizes(chunker: chunker_module.Chunker, step: int) -> list[int]:
        pos = 0

        def read_into(buf: memoryview) -> int:
            nonlocal pos
            n = min(len(buf), step, len(data) - pos)
            buf[:n] = data[pos : pos + n]
            pos += n
            return n

        return [len(c) for c in chunker.chunks(read_into)]

    sa = sizes(a, 1 << 30)
    assert sum(sa) == len(data)
    assert sizes(a, 100_003) == sa  # boundaries do not depend on read sizes
    assert sizes(b, 1 << 30) != sa  # another repository's key cuts elsewhere
    assert all(c <= 4 << 20 for c in sa)


def test_missing_native_chunker_is_a_hard_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("pyfastcdc.cy"):
            raise ImportError("no extension")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ChunkerUnavailableError):
        chunker_module.Chunker(1)


def test_a_damaged_index_file_is_set_aside_not_fatal() -> None:
    storage = MemoryStorage()
    repo = Repository.init(storage, VAULT_KEY)
    _store(repo, [b"abc" * 100])
    (key,) = [o.key for o in storage.list("index/")]
    data = bytearray(storage.get(key))
    data[-1] ^= 1
    storage.put(key, bytes(data))
    opened = Repository.open(storage, VAULT_KEY)
    assert "does not match its name" in opened.damaged[key]
    assert len(opened.index) == 0
    with pytest.raises(IntegrityError):
        opened.reload_index()


def test_locks() -> None:
    storage_clock = [10**18]
    storage = MemoryStorage(clock=lambda: storage_clock[0])
    repo = Repository.init(storage, VAULT_KEY)
    shared1 = repo.lock(hostname="a")
    shared2 = repo.lock(hostname="b")
    with pytest.raises(LockedError, match="held by host a"):
        repo.lock(exclusive=True, hostname="c")
    shared1.release()
    shared2.release()
    assert not list(storage.list("locks/"))
    exclusive = repo.lock(exclusive=True, hostname="c")
    with pytest.raises(LockedError):
        repo.lock(hostname="d")
    # The holder's lock was not rewritten for the stale period by the storage's clock.
    exclusive._stop.set()
    storage_clock[0] += STALE_AFTER_NS + 1
    with repo.lock(hostname="d"):
        pass
    exclusive.release()


def test_pack_layout_matches_the_spec() -> None:
    storage = MemoryStorage()
    repo = Repository.init(storage, VAULT_KEY)
    _store(repo, [b"x" * 10])
    data = storage.get(_only_pack(storage))
    assert data[:5] == b"CMTP\x01"
    (tlen,) = struct.unpack("<I", data[-4:])
    assert len(data) - 4 - tlen >= 8 + 29


def test_a_damaged_key_file_is_named_in_the_error() -> None:
    storage = MemoryStorage()
    Repository.init(storage, VAULT_KEY).close()
    (key,) = [o.key for o in storage.list("keys/")]
    data = bytearray(storage.get(key))
    data[1] ^= 1  # the magic bytes
    storage.put(key, bytes(data))
    with pytest.raises(IntegrityError, match=f"{key} is damaged"):
        Repository.open(storage, VAULT_KEY)
    data[1] ^= 1
    data[-1] ^= 1  # the sealed keys: indistinguishable from a wrong vault key
    storage.put(key, bytes(data))
    with pytest.raises(WrongVaultKeyError, match=key):
        Repository.open(storage, VAULT_KEY)


def test_a_damaged_snapshot_is_left_out_of_listings_and_recorded() -> None:
    storage = MemoryStorage()
    repo = Repository.init(storage, VAULT_KEY)
    ids = []
    for n in range(2):
        snapshot = Snapshot(item_id=f"i{n}", device_id="d", hostname="h", tree=b"\0" * 32,
                            start_ns=n, end_ns=n)  # fmt: skip
        ids.append(repo.save_snapshot(snapshot))
    key = f"snapshots/{ids[0].hex()}"
    data = bytearray(storage.get(key))
    data[-1] ^= 1
    storage.put(key, bytes(data))
    assert [s.id for s in repo.list_snapshots()] == [ids[1]]
    assert key in repo.damaged


def test_trees_are_read_in_spans_and_damage_is_still_named() -> None:
    """Walking many small trees asks storage for a span of their pack, not one read a
    tree; a damaged or truncated tree pack still fails with the tree's own error."""

    class Counting(MemoryStorage):
        gets = 0

        def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
            self.gets += 1
            return super().get(key, offset, length)

    storage = Counting()
    repo = Repository.init(storage, VAULT_KEY)
    trees = [Tree((Node(name=f"f{i}", type=NodeType.FILE, size=i),)) for i in range(200)]
    with repo.blob_writer() as writer:
        ids = []
        for tree in trees:
            data = tree.encode()
            tree_id = repo.sealer.blob_id(BlobType.TREE, data)
            writer.add(BlobType.TREE, tree_id, data)
            ids.append(tree_id)
        writer.flush()
    reader = Repository.open(storage, VAULT_KEY)
    storage.gets = 0
    assert [reader.load_tree(i) for i in ids] == trees
    assert storage.gets <= 3  # one span (the pack is smaller than one)
    key = _only_pack(storage)
    data = bytearray(storage.get(key))
    loc = reader.locate(ids[-1])
    data[loc.offset + 20] ^= 0x01
    storage.put(key, bytes(data))
    damaged = Repository.open(storage, VAULT_KEY)
    with pytest.raises(IntegrityError, match=ids[-1].hex()):
        damaged.load_tree(ids[-1])
    storage.put(key, bytes(data[: loc.offset + 5]))
    truncated = Repository.open(storage, VAULT_KEY)
    with pytest.raises(IntegrityError, match="truncated"):
        truncated.load_tree(ids[-1])


def _reader(data: bytes, step: int) -> chunker_module.ReadInto:
    """Reads ``data`` at most ``step`` bytes at a time."""
    source = io.BytesIO(data)

    def read_into(buf: memoryview) -> int:
        return source.readinto(buf[:step])

    return read_into


@pytest.mark.parametrize("step", [1 << 30, 100_003, 65_536])
def test_chunker_cuts_a_stream_where_fastcdc_cuts_the_whole(step: int) -> None:
    """The streaming chunker (a buffer a quarter above the maximum chunk, chunks taken
    as soon as one ends before the data read so far) cuts exactly where FastCDC cuts the
    whole input at once: random runs, zero runs and constant runs force natural cuts,
    cuts at the maximum size and chunks longer than the buffer's spare room."""
    from pyfastcdc.cy import FastCDC

    rng = random.Random(step)
    repo = Repository.init(MemoryStorage(), VAULT_KEY)
    for _ in range(4):
        parts = []
        for _ in range(rng.randint(1, 10)):
            n = rng.randint(0, 6 << 20)
            kind = rng.random()
            if kind < 0.5:
                parts.append(rng.randbytes(n))
            elif kind < 0.75:
                parts.append(bytes(n))
            else:
                parts.append(bytes([rng.randint(0, 255)]) * n)
        data = b"".join(parts)
        params = repo.chunker_params
        whole = FastCDC(
            params["avg_size"],
            min_size=params["min_size"],
            max_size=params["max_size"],
            normalized_chunking=1,
            seed=repo.chunker_seed,
        )
        expected = [c.length for c in whole.cut_buf(data)] if data else []
        got = [bytes(c) for c in repo.new_chunker().chunks(_reader(data, step))]
        assert [len(c) for c in got] == expected
        assert b"".join(got) == data
