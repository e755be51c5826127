"""``SnapshotFilesystem``: the pyfuse3 operations of a read-only mount.

Inodes are handed out as entries are first seen and kept for the life of the mount
(snapshots never change, so an inode always means the same node). Hard links of one
snapshot (same ``dev``/``inode`` with ``nlink`` > 1) share an inode. Virtual directories
(``by-item``, …) are rebuilt from the snapshot list at most every ``list_ttl`` seconds,
when they are listed or looked up, so snapshots taken while mounted appear.

Everything that touches storage runs in a worker thread (``trio.to_thread``), so many
files are read at once; what is held already (most directories, through ``TreeCache``,
and cached file data) is answered on the FUSE loop without a thread hop. A snapshot's
entries get an inode and attributes once, when first looked up or listed. A blob
that cannot be read fails that read with EIO and a warning in the log; the other ranges
of the file still read.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyfuse3
import trio

from comet.agent.errors import AgentError, IntegrityError
from comet.agent.mount.blob_cache import BlobCache
from comet.agent.mount.layout import Layout, Path, build_layout
from comet.agent.mount.tree_cache import Listing, TreeCache
from comet.agent.repository.repository import Repository
from comet.agent.repository.snapshot import Snapshot
from comet.agent.repository.tree import Node, NodeType
from comet.agent.restore.names import valid_name
from comet.agent.storage.base import StorageError

log = logging.getLogger("comet.agent.mount")

_TYPE_BITS = {
    NodeType.FILE: stat.S_IFREG,
    NodeType.DIR: stat.S_IFDIR,
    NodeType.SYMLINK: stat.S_IFLNK,
    NodeType.FIFO: stat.S_IFIFO,
    NodeType.CHARDEV: stat.S_IFCHR,
    NodeType.BLOCKDEV: stat.S_IFBLK,
    NodeType.SOCKET: stat.S_IFSOCK,
}
# How long the kernel may keep names and attributes without asking again. A snapshot's
# contents never change: the kernel keeps them, and the names missing from them, for an
# hour. The directories above (by-item/…) keep their inodes but gain snapshots, so only
# their names are kept for a while (listings and names not found always reach the
# mount); so is 'latest', whose target is asked for every time (the kernel does not
# keep it) and whose attributes after a second.
_CONTENT_TIMEOUT = 3600.0
_VIRTUAL_DIR_TIMEOUT = 30.0
_VIRTUAL_TIMEOUT = 1.0
_READ_AHEAD_BLOBS = 8
INLINE_READ_BYTES = 1 << 20
_TREE_READ_AHEAD = 64
_SPINE_DEPTH = 32
_BLKSIZE = 128 << 10


SnapshotSource = Callable[[], tuple[list[Snapshot], dict[str, str]]]
"""Returns the snapshots to show and item id → item name; called in a worker thread."""


_NODE_TYPES = {t.value: t for t in NodeType}
_RAW_TYPE_BITS = {t.value: bits for t, bits in _TYPE_BITS.items()}


def _attrs(
    ino: int, node: Node, timeout: float, entry_timeout: float | None = None
) -> pyfuse3.EntryAttributes:
    a = pyfuse3.EntryAttributes()
    a.st_ino = ino
    a.entry_timeout = timeout if entry_timeout is None else entry_timeout
    a.attr_timeout = timeout
    a.st_mode = _TYPE_BITS[node.type] | (node.mode & 0o7777)
    a.st_nlink = max(node.nlink, 1)
    a.st_uid = node.uid
    a.st_gid = node.gid
    if node.rdev_major or node.rdev_minor:
        a.st_rdev = os.makedev(node.rdev_major, node.rdev_minor)
    if node.type == NodeType.FILE:
        a.st_size = node.size
    elif node.type == NodeType.SYMLINK:
        a.st_size = len(os.fsencode(node.target or ""))
    a.st_blksize = _BLKSIZE
    a.st_blocks = (a.st_size + 511) // 512
    a.st_atime_ns = a.st_mtime_ns = node.mtime_ns
    a.st_ctime_ns = node.ctime_ns or node.mtime_ns
    return a


def _raw_attrs(ino: int, raw: dict[str, Any]) -> pyfuse3.EntryAttributes:
    """``_attrs`` of a node in its stored form (fields left out are zero, ``nlink`` 1)."""
    get = raw.get
    kind = raw["type"]
    a = pyfuse3.EntryAttributes()  # every field starts at zero: set only the others
    a.st_ino = ino
    a.entry_timeout = a.attr_timeout = _CONTENT_TIMEOUT
    a.st_mode = _RAW_TYPE_BITS[kind] | (get("mode", 0) & 0o7777)
    a.st_nlink = max(get("nlink", 1), 1)
    uid, gid = get("uid"), get("gid")
    if uid:
        a.st_uid = uid
    if gid:
        a.st_gid = gid
    if "rdev_major" in raw or "rdev_minor" in raw:
        a.st_rdev = os.makedev(get("rdev_major", 0), get("rdev_minor", 0))
    size = 0
    if kind == "file":
        size = get("size", 0)
    elif kind == "symlink":
        size = len(os.fsencode(get("target") or ""))
    if size:
        a.st_size = size
        a.st_blocks = (size + 511) // 512
    a.st_blksize = _BLKSIZE
    mtime = get("mtime_ns", 0)
    if mtime:
        a.st_atime_ns = a.st_mtime_ns = mtime
    ctime = get("ctime_ns") or mtime
    if ctime:
        a.st_ctime_ns = ctime
    return a


_MISSING = pyfuse3.EntryAttributes()
_MISSING.st_ino = 0  # a name missing from a snapshot: cached like its other names
_MISSING.entry_timeout = _CONTENT_TIMEOUT


class _Inode:
    """One node of the mount. A snapshot's entries keep their stored form (``raw``) and
    build their ``Node`` only when first needed (opened, read as a link); their
    attributes are built once, when they are first looked up or listed."""

    __slots__ = (
        "_node",
        "_raw",
        "attrs",
        "index",
        "ino",
        "inos",
        "listing",
        "name",
        "names",
        "parent",
        "snapshot",
        "subtree",
        "type",
        "virtual",
    )

    def __init__(
        self,
        ino: int,
        parent: int,
        name: str,
        kind: NodeType,
        attrs: pyfuse3.EntryAttributes,
        *,
        node: Node | None = None,
        raw: dict[str, Any] | None = None,
        subtree: bytes | None = None,
        virtual: Path | None = None,
        snapshot: bytes = b"",
    ) -> None:
        self.ino = ino
        self.parent = parent
        self.name = name
        self.type = kind
        self.attrs = attrs
        self.subtree = subtree
        self.virtual = virtual  # set for by-item/… directories and their symlinks
        self.snapshot = snapshot
        # Set once the directory is listed: its entry names, name → position (built on
        # the first lookup), and the entries' inodes (0 until an entry is first looked
        # up or listed; ``listing`` holds the stored entries until then).
        self.names: list[bytes] | None = None
        self.index: dict[bytes, int] = {}
        self.inos: list[int] = []
        self.listing: Listing = []
        self._node = node
        self._raw = raw

    def relink(self, node: Node, attrs: pyfuse3.EntryAttributes) -> None:
        """A virtual symlink now pointing elsewhere."""
        self._node, self.attrs = node, attrs

    @property
    def node(self) -> Node:
        """Raises IntegrityError for a malformed stored node."""
        if self._node is None:
            try:
                self._node = Node.from_json(self._raw)
            except (ValueError, KeyError, TypeError) as e:
                raise IntegrityError(f"malformed node {self.name!r} ({e})") from e
        return self._node


@dataclass
class _OpenFile:
    size: int
    path: str
    blob_ids: list[bytes]
    starts: list[int]
    readable_until: int  # data past here cannot be located (a blob missing from the index)
    last_end: int = -1
    ahead_until: int = 0


class SnapshotFilesystem(pyfuse3.Operations):
    def __init__(
        self,
        repo: Repository,
        cache: BlobCache[bytes],
        trees: TreeCache,
        source: SnapshotSource,
        *,
        all_devices: bool = False,
        list_ttl: float = 5.0,
        inline_read_bytes: int = 0,
        inline_trees: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``inline_read_bytes``: a read missing at most this many bytes of blobs reads
        them on the FUSE loop itself; ``inline_trees``: directories are read on the FUSE
        loop too, reading ahead in the background only the way down from each item's
        latest snapshot (a mount's first visit). Both for storage quick enough
        (a local disk) that handing the work to a thread and back costs more than the
        read: on a busy machine each hop waits for a thread to be scheduled, and the
        threads reading ahead compete with the loop for the interpreter."""
        super().__init__()
        self._repo = repo
        self._cache = cache
        self._trees = trees
        self._source = source
        self._all_devices = all_devices
        self._list_ttl = list_ttl
        self._inline_read_bytes = inline_read_bytes
        self._inline_trees = inline_trees
        self._clock = clock
        self._listed_at: float | None = None
        self._refresh_lock = trio.Lock()
        self._uid, self._gid = os.getuid(), os.getgid()
        self._inodes: dict[int, _Inode] = {}
        self._virtual: dict[Path, int] = {}
        self._snapshot_roots: dict[bytes, int] = {}
        self._hard_links: dict[tuple[bytes, int, int], int] = {}
        self._warmed: set[bytes] = set()
        self._next_ino = pyfuse3.ROOT_INODE
        self._open: dict[int, _OpenFile] = {}
        self._next_fh = 1
        self._root = self._virtual_inode((), NodeType.DIR, time.time_ns(), parent=0)

    # --- inodes -----------------------------------------------------------------------

    def _add(self, inode: _Inode) -> _Inode:
        self._inodes[inode.ino] = inode
        return inode

    def _new_ino(self) -> int:
        ino = self._next_ino
        self._next_ino += 1
        return ino

    def _virtual_inode(self, path: Path, kind: NodeType, mtime_ns: int, *, parent: int) -> int:
        ino = self._virtual.get(path)
        if ino is None:
            name = path[-1] if path else ""
            node = Node(
                name,
                kind,
                mode=0o555 if kind == NodeType.DIR else 0o777,
                uid=self._uid,
                gid=self._gid,
                mtime_ns=mtime_ns,
                ctime_ns=mtime_ns,
                nlink=2 if kind == NodeType.DIR else 1,
            )
            ino = self._new_ino()
            self._add(self._node_inode(ino, parent, node, virtual=path))
            self._virtual[path] = ino
        return ino

    def _node_inode(
        self,
        ino: int,
        parent: int,
        node: Node,
        *,
        virtual: Path | None = None,
        snapshot: bytes = b"",
    ) -> _Inode:
        if virtual is None:
            attrs = _attrs(ino, node, _CONTENT_TIMEOUT)
        elif node.type == NodeType.DIR:
            attrs = _attrs(ino, node, _VIRTUAL_DIR_TIMEOUT)
        else:
            attrs = _attrs(ino, node, _VIRTUAL_TIMEOUT, _VIRTUAL_DIR_TIMEOUT)
        return _Inode(
            ino,
            parent,
            node.name,
            node.type,
            attrs,
            node=node,
            subtree=node.subtree,
            virtual=virtual,
            snapshot=snapshot,
        )

    def _get(self, ino: int) -> _Inode:
        inode = self._inodes.get(ino)
        if inode is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return inode

    def _path_of(self, inode: _Inode) -> str:
        parts: list[str] = []
        while inode.ino != pyfuse3.ROOT_INODE and inode.parent:
            parts.append(inode.name)
            inode = self._inodes[inode.parent]
        return "/" + "/".join(reversed(parts))

    # --- the virtual directories ------------------------------------------------------

    async def _refresh(self) -> None:
        async with self._refresh_lock:
            now = self._clock()
            if self._listed_at is not None and now - self._listed_at < self._list_ttl:
                return
            snapshots, names = await self._in_thread(self._source)
            self._apply_layout(build_layout(snapshots, names, all_devices=self._all_devices))
            self._listed_at = now

    def _apply_layout(self, layout: Layout) -> None:
        now = time.time_ns()
        for path in layout.dirs:  # parents come before children in build order
            parent = self._virtual[path[:-1]] if path else 0
            self._virtual_inode(path, NodeType.DIR, now, parent=parent)
        for path, snapshot in layout.snapshots.items():
            if snapshot.id not in self._snapshot_roots:
                node = Node(
                    path[-1],
                    NodeType.DIR,
                    mode=0o555,
                    uid=self._uid,
                    gid=self._gid,
                    mtime_ns=snapshot.end_ns,
                    ctime_ns=snapshot.end_ns,
                    nlink=2,
                    subtree=snapshot.tree,
                )
                ino = self._new_ino()
                parent = self._virtual[path[:-1]]
                self._add(self._node_inode(ino, parent, node, snapshot=snapshot.id))
                self._snapshot_roots[snapshot.id] = ino
        for path, target in layout.links.items():
            latest = layout.snapshots.get((*path[:-1], target))
            if latest is not None and latest.id not in self._warmed:
                # Most visits go through 'latest': read its way down before it is asked.
                self._warmed.add(latest.id)
                self._trees.in_background(functools.partial(self._load_spine, latest.tree))
            ino = self._virtual_inode(path, NodeType.SYMLINK, now, parent=self._virtual[path[:-1]])
            inode = self._inodes[ino]
            if inode.node.target != target:
                node = Node(
                    path[-1],
                    NodeType.SYMLINK,
                    mode=0o777,
                    uid=self._uid,
                    gid=self._gid,
                    mtime_ns=now,
                    ctime_ns=now,
                    target=target,
                )
                inode.relink(node, _attrs(ino, node, _VIRTUAL_TIMEOUT, _VIRTUAL_DIR_TIMEOUT))
        for path, names in layout.dirs.items():
            inode = self._inodes[self._virtual[path]]
            children: dict[bytes, int] = {}
            for name in names:
                child = (*path, name)
                if child in layout.snapshots:
                    children[os.fsencode(name)] = self._snapshot_roots[layout.snapshots[child].id]
                elif child in self._virtual:
                    children[os.fsencode(name)] = self._virtual[child]
            inode.names = sorted(children)
            inode.index = {name: i for i, name in enumerate(inode.names)}
            inode.inos = [children[name] for name in inode.names]

    # --- snapshot contents ------------------------------------------------------------

    async def _listed(self, inode: _Inode) -> list[bytes]:
        """The directory's entry names, listing it first if needed (EIO if its tree
        cannot be read)."""
        if inode.virtual is not None:
            await self._refresh()
        if inode.names is not None:
            return inode.names
        if inode.type != NodeType.DIR:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        subtree = inode.subtree
        listing: Listing = []
        try:
            if subtree:
                # Usually held already, read with the window of a directory above or
                # with the spine below a snapshot root; else read here (local storage)
                # or in a worker thread.
                held = self._trees.cached(subtree)
                if held is not None:
                    listing = held
                elif self._inline_trees:
                    listing = self._trees.load(subtree)
                else:
                    listing = await self._in_thread(lambda: self._load_spine(subtree))
            if inode.names is not None:  # another task listed it meanwhile
                return inode.names
            names = [os.fsencode(raw["name"]) for raw in listing]
            if len(set(names)) != len(names) or not all(valid_name(r["name"]) for r in listing):
                listing, names = self._safe_entries(inode, listing)
            below = [
                bytes.fromhex(raw["subtree"])
                for raw in ([] if self._inline_trees else listing)
                if raw["type"] == "dir" and raw.get("subtree")
            ]
        except (AgentError, ValueError, KeyError, TypeError, OverflowError) as e:
            log.warning("mount: %s: %s", self._path_of(inode), e)
            raise pyfuse3.FUSEError(errno.EIO) from e
        inode.listing = listing
        inode.index = {}  # built on the first lookup: find and ls only list
        inode.inos = [0] * len(names)
        inode.names = names
        if below:  # find, ls -R and file managers descend next: read those trees ahead
            self._trees.prefetch(below[:_TREE_READ_AHEAD])
        return names

    def _safe_entries(self, inode: _Inode, listing: Listing) -> tuple[Listing, list[bytes]]:
        """The entries of a crafted or damaged tree a filesystem can show: a name the
        kernel would refuse (``..``, ``a/b``, empty, NUL) fails the whole directory, and
        a repeated name could only ever reach its first entry; both are left out, with a
        warning (restore refuses the same names)."""
        kept: Listing = []
        names: list[bytes] = []
        seen: set[bytes] = set()
        where = self._path_of(inode)
        for raw in listing:
            name = os.fsencode(raw["name"])
            if not valid_name(raw["name"]):
                log.warning("mount: %s: left out an entry with an unsafe name %r", where, name)
            elif name in seen:
                log.warning("mount: %s: left out a repeated name %r", where, name)
            else:
                seen.add(name)
                kept.append(raw)
                names.append(name)
        return kept, names

    def _child(self, parent: _Inode, i: int) -> _Inode:
        """The inode of a listed directory's ``i``-th entry, made on first use (hard
        links of one snapshot share one). EIO for a malformed entry."""
        ino = parent.inos[i]
        if ino:
            return self._inodes[ino]
        raw = parent.listing[i]
        try:
            kind = raw["type"]
            subtree = None
            if kind == "dir" and raw.get("subtree") is not None:
                subtree = bytes.fromhex(raw["subtree"])
            key = None
            if kind == "file" and raw.get("nlink", 1) > 1 and raw.get("inode", 0):
                key = (parent.snapshot, raw.get("dev", 0), raw["inode"])
                linked = self._hard_links.get(key)
                if linked is not None:
                    parent.inos[i] = linked
                    return self._inodes[linked]
            ino = self._new_ino()
            inode = _Inode(
                ino,
                parent.ino,
                raw["name"],
                _NODE_TYPES[kind],
                _raw_attrs(ino, raw),
                raw=raw,
                subtree=subtree,
                snapshot=parent.snapshot,
            )
        except (ValueError, KeyError, TypeError, OverflowError) as e:
            log.warning("mount: %s: malformed entry %d: %s", self._path_of(parent), i, e)
            raise pyfuse3.FUSEError(errno.EIO) from e
        self._inodes[ino] = inode
        if key is not None:
            self._hard_links[key] = ino
        parent.inos[i] = ino
        return inode

    def _load_spine(self, tree_id: bytes) -> Listing:
        """Load a tree and, while it holds a single directory, that directory's tree
        too: a snapshot mirrors absolute paths (``/home/u/docs``), so the way down to
        the backed-up folders is a chain that every visit walks, one lookup at a time."""
        first = listing = self._trees.load(tree_id)
        for _ in range(_SPINE_DEPTH):
            below = [n["subtree"] for n in listing if n["type"] == "dir" and n.get("subtree")]
            if len(below) != 1:
                self._trees.prefetch(bytes.fromhex(b) for b in below[:_TREE_READ_AHEAD])
                break
            listing = self._trees.load(bytes.fromhex(below[0]))
        return first

    @staticmethod
    async def _in_thread(fn: Callable[[], Any]) -> Any:
        try:
            return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)
        except (AgentError, StorageError) as e:
            log.warning("mount: %s", e)
            raise pyfuse3.FUSEError(errno.EIO) from e

    # --- pyfuse3 operations -----------------------------------------------------------

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> Any:
        parent = self._get(parent_inode)
        if name == b".":
            return parent.attrs
        if name == b"..":
            return self._get(parent.parent or pyfuse3.ROOT_INODE).attrs
        # A snapshot's directories answer without awaiting once listed.
        if parent.names is None or parent.virtual is not None:
            await self._listed(parent)
        index = parent.index
        if not index and parent.names:
            index = parent.index = {n: i for i, n in enumerate(parent.names)}
        i = index.get(name)
        if i is None:
            if parent.virtual is not None:  # may appear with the next snapshot
                raise pyfuse3.FUSEError(errno.ENOENT)
            return _MISSING  # the kernel remembers it is missing (file managers ask a lot)
        return self._child(parent, i).attrs

    async def getattr(self, inode: int, ctx: Any = None) -> Any:
        return self._get(inode).attrs

    def _node(self, inode: _Inode) -> Node:
        try:
            return inode.node
        except AgentError as e:
            log.warning("mount: %s: %s", self._path_of(inode), e)
            raise pyfuse3.FUSEError(errno.EIO) from e

    async def readlink(self, inode: int, ctx: Any) -> bytes:
        link = self._get(inode)
        if link.virtual is not None:  # 'latest' follows the snapshots taken meanwhile
            await self._refresh()
        node = self._node(link)
        if node.type != NodeType.SYMLINK:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return os.fsencode(node.target or "")

    async def opendir(self, inode: int, ctx: Any) -> int:
        await self._listed(self._get(inode))
        return inode

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        inode = self._get(fh)
        names = inode.names
        if names is None or inode.virtual is not None:
            names = await self._listed(inode)
        child, reply = self._child, pyfuse3.readdir_reply
        for i in range(start_id, len(names)):
            if not reply(token, names[i], child(inode, i).attrs, i + 1):
                break

    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        for key, value in self._node(self._get(inode)).xattrs:
            if os.fsencode(key) == name:
                return value
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    async def listxattr(self, inode: int, ctx: Any) -> list[bytes]:
        return [os.fsencode(k) for k, _ in self._node(self._get(inode)).xattrs]

    async def statfs(self, ctx: Any) -> Any:
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_namemax = 255
        return s

    async def open(self, inode: int, flags: int, ctx: Any) -> Any:
        node_inode = self._get(inode)
        if node_inode.type != NodeType.FILE:
            raise pyfuse3.FUSEError(errno.EISDIR if node_inode.type == NodeType.DIR else errno.EIO)
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise pyfuse3.FUSEError(errno.EROFS)
        opened = self._locate(node_inode, self._node(node_inode))
        if opened.blob_ids and not self._inline(opened, 0, 0):
            self._cache.read_ahead(opened.blob_ids[:1])  # the first read is coming
        fh = self._next_fh
        self._next_fh += 1
        self._open[fh] = opened
        return pyfuse3.FileInfo(fh=fh, keep_cache=True)

    def _locate(self, inode: _Inode, node: Node) -> _OpenFile:
        blob_ids = list(node.content)
        starts: list[int] = []
        pos = 0
        for i, blob_id in enumerate(blob_ids):
            loc = self._repo.index.lookup(blob_id)
            if loc is None:
                path = self._path_of(inode)
                log.warning(
                    "mount: %s: blob %s is in no index; bytes from %d on are unreadable",
                    path,
                    blob_id.hex(),
                    pos,
                )
                return _OpenFile(node.size, path, blob_ids[:i], starts, pos)
            starts.append(pos)
            pos += loc.raw_length
        return _OpenFile(node.size, self._path_of(inode), blob_ids, starts, max(pos, node.size))

    # pyfuse3 takes any contiguous buffer (it replies through the buffer protocol).
    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:  # type: ignore[override]
        opened = self._open.get(fh)
        if opened is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        end = min(off + size, opened.size)
        if off >= end:
            return b""
        if end > opened.readable_until:
            raise pyfuse3.FUSEError(errno.EIO)
        first = max(bisect_right(opened.starts, off) - 1, 0)
        last = max(bisect_right(opened.starts, end - 1) - 1, 0)
        if off == opened.last_end:  # sequential (not the first read: that one is alone)
            self._read_ahead(opened, last)
        opened.last_end = end
        cached = self._read_cached(opened, off, end, first, last)
        if cached is not None:  # no thread hop: most reads of a sequential stream
            return cached
        try:
            if self._inline(opened, first, last):
                return self._read_range(opened, off, end, first, last)
            return await trio.to_thread.run_sync(
                self._read_range, opened, off, end, first, last, abandon_on_cancel=True
            )
        except (AgentError, StorageError) as e:
            log.warning("mount: %s: bytes %d-%d unreadable: %s", opened.path, off, end, e)
            raise pyfuse3.FUSEError(errno.EIO) from e

    def _inline(self, opened: _OpenFile, first: int, last: int) -> bool:
        """Whether blobs ``first``..``last`` are small enough to read on the loop."""
        if last >= len(opened.starts):
            return False
        end = opened.starts[last + 1] if last + 1 < len(opened.starts) else opened.readable_until
        return end - opened.starts[first] <= self._inline_read_bytes

    def _read_cached(
        self, opened: _OpenFile, off: int, end: int, first: int, last: int
    ) -> bytes | memoryview | None:
        parts: list[memoryview] = []
        for i in range(first, min(last + 1, len(opened.blob_ids))):
            data = self._cache.peek(opened.blob_ids[i])
            if data is None:
                return None
            start = opened.starts[i]
            parts.append(memoryview(data)[max(off - start, 0) : end - start])
        return _joined(parts, end - off)

    def _read_ahead(self, opened: _OpenFile, last: int) -> None:
        want = min(last + 1 + _READ_AHEAD_BLOBS, len(opened.blob_ids))
        if want - opened.ahead_until > _READ_AHEAD_BLOBS // 2:
            self._cache.read_ahead(opened.blob_ids[max(opened.ahead_until, last + 1) : want])
            opened.ahead_until = want

    def _read_range(
        self, opened: _OpenFile, off: int, end: int, first: int, last: int
    ) -> bytes | memoryview:
        parts: list[memoryview] = []
        for i in range(first, min(last + 1, len(opened.blob_ids))):
            data = self._cache.get(opened.blob_ids[i])
            start = opened.starts[i]
            parts.append(memoryview(data)[max(off - start, 0) : end - start])
        return _joined(parts, end - off)

    async def release(self, fh: int) -> None:
        self._open.pop(fh, None)

    async def releasedir(self, fh: int) -> None:
        return None

    async def forget(self, inode_list: Any) -> None:
        return None  # inodes live as long as the mount


def _joined(parts: list[memoryview], size: int) -> bytes | memoryview:
    """The parts as one buffer of ``size`` bytes, zeros past the last blob (where a node
    says the file is longer than its blobs). A read within one blob is a view of the
    cached blob: pyfuse3 copies it to the kernel, no copy is made before."""
    if len(parts) == 1 and len(parts[0]) == size:
        return parts[0]
    data = b"".join(parts)
    return data if len(data) >= size else data + bytes(size - len(data))
