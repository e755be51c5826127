"""``Repository``: the facade over one vault's repository format.

Opens or creates a repository on a ``Storage``, holds the keys and the blob index, and
reads and writes blobs, trees, index files and snapshots.
"""

from __future__ import annotations

import json
import os
import shlex
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from comet.agent.errors import (
    BlobNotFoundError,
    IntegrityError,
    RepositoryError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
    UnsupportedFormatError,
    WrongVaultKeyError,
)
from comet.agent.repository.blob_writer import BlobWriter
from comet.agent.repository.chunker import Chunker
from comet.agent.repository.crypto import MasterKeys, Sealer, object_id, unwrap_keys, wrap_keys
from comet.agent.repository.format import (
    CHUNK_AVG,
    CHUNK_MAX,
    CHUNK_MIN,
    FORMAT_VERSION,
    ID_SIZE,
    MAGIC_CONFIG,
    MAGIC_SNAPSHOT,
    BlobType,
    ChunkerAlgorithm,
    check_header,
    header,
)
from comet.agent.repository.index import (
    BlobIndex,
    BlobLocation,
    encode_index_file,
    read_index_file,
)
from comet.agent.repository.lock import LockPolicy, RepositoryLock
from comet.agent.repository.pack import PackEntry, pack_key
from comet.agent.repository.snapshot import Snapshot
from comet.agent.repository.tree import Tree
from comet.agent.storage.base import (
    ObjectNotFoundError,
    Storage,
    StorageError,
    TransientStorageError,
)

_TREE_CACHE = 256
# Adjacent blobs read with one ranged read, up to about this many bytes a read. Each
# restore worker holds its run while it opens the blobs in it: at 4 MiB the two
# workers' runs were ~6 MiB of a small-file restore's peak, for reads no cheaper.
_RUN_BYTES = 1 << 20
# Tree blobs are read in spans of their pack: a snapshot's trees were written together
# in walk order, so a walk finds most of the next trees in the span it just read
# instead of asking storage once per directory.
_TREE_SPAN = 512 << 10
_TREE_SPANS = 4


class Repository:
    """An open repository. Thread-safe for reads and for one ``BlobWriter`` at a time
    per thread; several processes may write to one repository at once."""

    def __init__(
        self,
        storage: Storage,
        repository_id: bytes,
        keys: MasterKeys,
        chunker_params: dict[str, int],
        now_ns: Callable[[], int],
        lock_policy: LockPolicy | None = None,
        index_only: BlobType | None = None,
    ) -> None:
        self.storage = storage
        self.lock_policy = lock_policy or LockPolicy()
        self.label = ""  # the vault's name, for messages that tell a person what to run
        # Objects set aside because they are damaged: (key, message). Opening, listing
        # and reading go on without them; verify and the job logs report them.
        self.damaged: dict[str, str] = {}
        self.id = repository_id
        self.sealer = Sealer(keys)
        self.chunker_seed = keys.chunker_seed
        self.chunker_params = chunker_params
        self.index = BlobIndex(only=index_only)
        self.now_ns = now_ns
        self._known_indexes: set[str] = set()
        self._index_lock = threading.Lock()
        self._trees: OrderedDict[bytes, Tree] = OrderedDict()
        self._trees_lock = threading.Lock()
        # Recently read spans of tree packs: (pack id, offset) -> bytes; pack sizes.
        self._spans: OrderedDict[tuple[bytes, int], bytes] = OrderedDict()
        self._pack_sizes: dict[bytes, int] = {}

    # --- creating and opening -------------------------------------------------------

    @classmethod
    def init(
        cls,
        storage: Storage,
        vault_key: bytes,
        *,
        now_ns: Callable[[], int] = time.time_ns,
        lock_policy: LockPolicy | None = None,
    ) -> Repository:
        """Create a new repository with fresh random master keys wrapped by ``vault_key``.

        Raises RepositoryExistsError if ``storage`` already holds one."""
        try:
            storage.stat("config")
            raise RepositoryExistsError("this vault already holds a repository")
        except ObjectNotFoundError:
            pass
        repository_id = os.urandom(ID_SIZE)
        keys = MasterKeys.generate()
        params = {"min_size": CHUNK_MIN, "avg_size": CHUNK_AVG, "max_size": CHUNK_MAX}
        config = {
            "repository_id": repository_id.hex(),
            "version": FORMAT_VERSION,
            "chunker": {"algorithm": int(ChunkerAlgorithm.FASTCDC2020_SEEDED), **params},
            "created_ns": now_ns(),
        }
        storage.put(f"keys/{os.urandom(ID_SIZE).hex()}", wrap_keys(keys, vault_key, repository_id))
        # The config goes last: a repository without it does not exist yet.
        storage.put("config", header(MAGIC_CONFIG) + json.dumps(config).encode())
        return cls(storage, repository_id, keys, params, now_ns, lock_policy)

    @classmethod
    def open(
        cls,
        storage: Storage,
        vault_key: bytes,
        *,
        now_ns: Callable[[], int] = time.time_ns,
        lock_policy: LockPolicy | None = None,
        index_only: BlobType | None = None,
    ) -> Repository:
        """Open an existing repository and load its index. Damaged index files are set
        aside (see ``damaged``), never a reason to refuse opening. ``index_only``
        (``BlobType.TREE`` to browse) indexes blobs of that type only: reading another
        type is then a programming error (ValueError).

        Raises RepositoryNotFoundError, WrongVaultKeyError (naming damaged key files),
        UnsupportedFormatError."""
        try:
            raw = storage.get("config")
        except ObjectNotFoundError:
            raise RepositoryNotFoundError("this vault holds no Comet repository") from None
        check_header(raw, MAGIC_CONFIG, "config")
        try:
            config: dict[str, Any] = json.loads(raw[5:])
            repository_id = bytes.fromhex(config["repository_id"])
            chunker = config["chunker"]
            algorithm = chunker["algorithm"]
            params = {k: int(chunker[k]) for k in ("min_size", "avg_size", "max_size")}
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"config is malformed ({e})") from e
        if algorithm != ChunkerAlgorithm.FASTCDC2020_SEEDED:
            raise UnsupportedFormatError(f"config: unknown chunker algorithm {algorithm}")
        keys = None
        key_files = sorted(o.key for o in storage.list("keys/"))
        if not key_files:
            raise IntegrityError("the repository has no key files (keys/ is empty)")
        damaged: list[str] = []
        for key in key_files:
            try:
                keys = unwrap_keys(storage.get(key), vault_key, repository_id, key)
                break
            except WrongVaultKeyError:
                continue
            except (IntegrityError, UnsupportedFormatError, ObjectNotFoundError) as e:
                damaged.append(f"{key} is damaged ({e})")
        if keys is None:
            if damaged:
                raise IntegrityError(
                    "the repository cannot be opened: "
                    + "; ".join(damaged)
                    + ". Restore that key file from a copy of the vault"
                )
            names = ", ".join(key_files)
            raise WrongVaultKeyError(
                "the vault key does not open this repository: it belongs to another "
                f"account or password, or its key file is damaged ({names})"
            )
        repo = cls(storage, repository_id, keys, params, now_ns, lock_policy, index_only)
        repo.refresh_index()
        return repo

    # --- index ----------------------------------------------------------------------

    def refresh_index(self) -> int:
        """Load index files written since the last refresh (by this or another writer);
        return how many were loaded."""
        with self._index_lock:
            new = [o.key for o in self.storage.list("index/") if o.key not in self._known_indexes]
            # One index file's entries at a time: a big vault's would not fit decoded.
            for key in new:
                try:
                    data = self.storage.get(key)
                    self._check_object_id(key, data)
                    packs = read_index_file(self.sealer, data, key)
                except ObjectNotFoundError:
                    continue  # replaced by a prune meanwhile
                except IntegrityError as e:
                    self.damaged[key] = str(e)  # 'reindex' rebuilds what it listed
                    continue
                self.index.add_tables(packs)
                del data, packs  # not held while the next file is read
            self._known_indexes.update(new)
            return len(new)

    def reload_index(self, *, skip_damaged: bool = False) -> list[tuple[str, RepositoryError]]:
        """Forget the in-memory index and load every index file again (maintenance
        deletes packs and index files, which ``refresh_index`` never notices).

        A damaged index file raises its RepositoryError (the index then holds only
        what was loaded before it), or with ``skip_damaged`` is left out and returned
        as ``(key, error)``."""
        damaged: list[tuple[str, RepositoryError]] = []
        with self._index_lock:
            keys = [o.key for o in self.storage.list("index/")]
            # The old index goes first, so a big vault's is never held twice; until the
            # new one is complete, lookups see part of it (maintenance holds the lock).
            self.index = index = BlobIndex(only=self.index.only)
            for key in keys:
                try:
                    data = self.storage.get(key)
                    self._check_object_id(key, data)
                    index.add_tables(read_index_file(self.sealer, data, key))
                    del data  # not held while the next file is read
                except ObjectNotFoundError:
                    continue  # removed while listing
                except RepositoryError as e:
                    if not skip_damaged:
                        raise
                    damaged.append((key, e))
                    self.damaged[key] = str(e)
            self._known_indexes = set(keys)
        with self._trees_lock:
            self._trees.clear()
            self._spans.clear()
            self._pack_sizes.clear()
        return damaged

    def save_index(self, packs: Sequence[tuple[bytes, list[PackEntry] | bytes]]) -> bytes:
        """Store an index file listing ``packs`` (already stored); return its id."""
        data = encode_index_file(self.sealer, packs)
        index_id = object_id(data)
        key = f"index/{index_id.hex()}"
        self.storage.put(key, data)
        with self._index_lock:
            self._known_indexes.add(key)
        return index_id

    def _check_object_id(self, key: str, data: bytes) -> None:
        if object_id(data).hex() != key.rsplit("/", 1)[-1]:
            raise IntegrityError(f"{key} does not match its name (damaged object)")

    # --- blobs ----------------------------------------------------------------------

    def new_chunker(self) -> Chunker:
        """A chunker keyed for this repository (one per thread)."""
        return Chunker(self.chunker_seed, **self.chunker_params)

    def blob_writer(self, **kwargs: Any) -> BlobWriter:
        return BlobWriter(self, **kwargs)

    def locate(self, blob_id: bytes) -> BlobLocation:
        loc = self.index.lookup(blob_id)
        if loc is None:
            raise BlobNotFoundError(f"blob {blob_id.hex()} is in no index (data lost?)")
        return loc

    def read_blob(self, blob_type: BlobType, blob_id: bytes) -> bytes:
        """Read, decrypt and verify one blob. IntegrityError names the blob and pack."""
        if self.index.only is not None and blob_type != self.index.only:
            raise ValueError(f"this repository was opened to read {self.index.only.name} only")
        loc = self.locate(blob_id)
        if loc.blob_type != blob_type:
            raise IntegrityError(
                f"blob {blob_id.hex()} is indexed as {loc.blob_type.name}, not {blob_type.name}"
            )
        stored: bytes | memoryview | None = None
        if blob_type == BlobType.TREE and loc.length <= _TREE_SPAN:
            stored = self._tree_span(loc)
        if stored is None:
            stored = self._get_range(loc.pack_id, loc.offset, loc.length, blob_id)
        return self.sealer.open_blob(blob_type, blob_id, stored, f"pack {loc.pack_id.hex()}")

    def _tree_span(self, loc: BlobLocation) -> memoryview | None:
        """A tree blob's stored bytes from a cached span of its pack, reading a new
        span when none holds it; None if the span cannot be read (the caller then reads
        the blob alone, which reports the problem). What a span holds is checked like
        any read: ``open_blob`` authenticates every blob taken from it."""
        end = loc.offset + loc.length
        with self._trees_lock:
            for (pack_id, start), data in reversed(self._spans.items()):
                if pack_id == loc.pack_id and start <= loc.offset and end <= start + len(data):
                    return memoryview(data)[loc.offset - start : end - start]
            size = self._pack_sizes.get(loc.pack_id)
        try:
            if size is None:
                size = self.storage.stat(pack_key(loc.pack_id)).size
            length = min(max(_TREE_SPAN, loc.length), size - loc.offset)
            if length < loc.length:
                return None
            data = self.storage.get(pack_key(loc.pack_id), loc.offset, length)
        except TransientStorageError:
            raise
        except StorageError:
            return None
        if len(data) != length:
            return None
        with self._trees_lock:
            self._pack_sizes[loc.pack_id] = size
            self._spans[(loc.pack_id, loc.offset)] = data
            while len(self._spans) > _TREE_SPANS:
                self._spans.popitem(last=False)
        return memoryview(data)[: loc.length]

    def read_pack_blobs(
        self, pack_id: bytes, blobs: list[tuple[bytes, BlobLocation]]
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(blob id, plaintext)`` for blobs of one pack, reading runs of adjacent
        blobs with one ranged read each, in pack order."""
        blobs = sorted(blobs, key=lambda b: b[1].offset)
        where = f"pack {pack_id.hex()}"
        i = 0
        while i < len(blobs):
            j = i + 1
            start = blobs[i][1].offset
            end = start + blobs[i][1].length
            while j < len(blobs) and blobs[j][1].offset == end and end - start < _RUN_BYTES:
                end += blobs[j][1].length
                j += 1
            # Blobs are opened through views of the run: no stored copy per blob.
            with memoryview(self._get_range(pack_id, start, end - start, blobs[i][0])) as data:
                for blob_id, loc in blobs[i:j]:
                    with data[loc.offset - start : loc.offset - start + loc.length] as stored:
                        plain = self.sealer.open_blob(loc.blob_type, blob_id, stored, where)
                    yield blob_id, plain
            i = j

    def _get_range(self, pack_id: bytes, offset: int, length: int, blob_id: bytes) -> bytes:
        key = pack_key(pack_id)
        where = f"blob {blob_id.hex()} in pack {pack_id.hex()}"
        try:
            data = self.storage.get(key, offset, length)
        except ObjectNotFoundError:
            raise IntegrityError(f"{where}: the pack is missing from storage") from None
        except TransientStorageError:
            raise
        except StorageError as e:
            try:
                size = self.storage.stat(key).size
            except StorageError:
                raise e from None
            if size < offset + length:
                raise IntegrityError(f"{where}: the pack is truncated ({size} bytes)") from e
            raise
        if len(data) != length:
            raise IntegrityError(f"{where}: the pack is truncated")
        return data

    def stored_pack_ids(self) -> set[bytes]:
        """The ids of every pack in storage (one listing of ``data/``)."""
        out = set()
        for obj in self.storage.list("data/"):
            name = obj.key.rsplit("/", 1)[-1]
            if len(name) == 2 * ID_SIZE:
                try:
                    out.add(bytes.fromhex(name))
                except ValueError:
                    continue  # not a pack
        return out

    # --- trees ----------------------------------------------------------------------

    def load_tree(self, tree_id: bytes, *, cache: bool = True) -> Tree:
        """Read one directory's tree blob (cached). ``cache=False`` for a walk that
        reads each tree once (a listing, a restore): it uses a cached tree but does not
        add one, so the walk does not fill the cache (~12 MiB of nodes when its trees
        are directories of 64 small files) with trees it never asks for again."""
        with self._trees_lock:
            tree = self._trees.get(tree_id)
            if tree is not None:
                self._trees.move_to_end(tree_id)
                return tree
        tree = Tree.decode(self.read_blob(BlobType.TREE, tree_id), f"tree {tree_id.hex()}")
        if not cache:
            return tree
        with self._trees_lock:
            self._trees[tree_id] = tree
            while len(self._trees) > _TREE_CACHE:
                self._trees.popitem(last=False)
        return tree

    # --- snapshots ------------------------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> bytes:
        """Store a snapshot record: the commit point. Call after the writer's flush."""
        data = self.sealer.seal(header(MAGIC_SNAPSHOT), snapshot.encode())
        snapshot_id = object_id(data)
        self.storage.put(f"snapshots/{snapshot_id.hex()}", data)
        return snapshot_id

    def list_snapshots(self) -> list[Snapshot]:
        """Every readable snapshot, oldest first. A damaged one is left out and
        recorded in ``damaged`` (verify reports it; nothing deletes it)."""
        out = []
        for o in self.storage.list("snapshots/"):
            try:
                out.append(self.load_snapshot(o.key.rsplit("/", 1)[-1]))
            except SnapshotNotFoundError:
                continue  # forgotten while listing
            except IntegrityError as e:
                self.damaged[o.key] = str(e)
        out.sort(key=lambda s: (s.end_ns, s.id))
        return out

    def load_snapshot(self, snapshot_id: bytes | str) -> Snapshot:
        """Load a snapshot by id (bytes or hex; a unique hex prefix works too)."""
        hex_id = snapshot_id.hex() if isinstance(snapshot_id, bytes) else snapshot_id.lower()
        if len(hex_id) != 2 * ID_SIZE:
            matches = [
                o.key.rsplit("/", 1)[-1]
                for o in self.storage.list("snapshots/")
                if o.key.rsplit("/", 1)[-1].startswith(hex_id)
            ]
            if len(matches) != 1 or not hex_id:
                raise SnapshotNotFoundError(f"no single snapshot matches {hex_id!r}")
            hex_id = matches[0]
        key = f"snapshots/{hex_id}"
        try:
            data = self.storage.get(key)
        except (ObjectNotFoundError, ValueError):
            raise SnapshotNotFoundError(f"snapshot {hex_id} does not exist") from None
        except StorageError as e:
            if "invalid" in e.code:
                raise SnapshotNotFoundError(f"snapshot {hex_id!r} does not exist") from e
            raise
        self._check_object_id(key, data)
        check_header(data, MAGIC_SNAPSHOT, key)
        return Snapshot.decode(self.sealer.open(5, data, key), bytes.fromhex(hex_id))

    # --- locks ----------------------------------------------------------------------

    def lock(
        self,
        *,
        exclusive: bool = False,
        hostname: str = "",
        purpose: str = "",
        for_reading: bool = False,
    ) -> RepositoryLock:
        """Take a shared (or exclusive) lock, refreshed on a timer until released;
        raises LockedError on conflict. ``for_reading`` jobs (restore, verify) go on
        unlocked with the lock's ``warning`` set when the vault cannot be written."""
        return RepositoryLock.acquire(
            self.storage,
            self.sealer,
            exclusive=exclusive,
            hostname=hostname,
            now_ns=self.now_ns,
            policy=self.lock_policy,
            purpose=purpose,
            may_read_without=for_reading,
            vault=shlex.quote(self.label) if self.label else "VAULT",
        )

    def close(self) -> None:
        self.storage.close()


__all__ = ["Repository", "RepositoryError"]
