"""``SnapshotFilesystem``: the pyfuse3 operations of a read-only mount.

Inodes are handed out as entries are first seen and kept for the life of the mount
(snapshots never change, so an inode always means the same node). Hard links of one
snapshot (same ``dev``/``inode`` with ``nlink`` > 1) share an inode. Virtual directories
(``by-item``, …) are rebuilt from the snapshot list at most every ``list_ttl`` seconds,
when they are listed or looked up, so snapshots taken while mounted appear.

Everything that touches storage runs in a worker thread (``trio.to_thread``), so many
files are read at once. A blob that cannot be read fails that read with EIO and a
warning in the log; the other ranges of the file still read.
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
from dataclasses import dataclass, field
from typing import Any

import pyfuse3
import trio

from comet.agent.errors import AgentError
from comet.agent.mount.blob_cache import BlobCache
from comet.agent.mount.layout import Layout, Path, build_layout
from comet.agent.repository.repository import Repository
from comet.agent.repository.snapshot import Snapshot
from comet.agent.repository.tree import Node, NodeType, Tree
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
_CONTENT_TIMEOUT = 300.0  # snapshot contents never change
_VIRTUAL_TIMEOUT = 1.0
_READ_AHEAD_BLOBS = 8
_TREE_READ_AHEAD = 64
_SPINE_DEPTH = 32
_BLKSIZE = 128 << 10


class LazyTree:
    """A tree blob's plaintext, decoded on first use: read-ahead fetches many trees
    that may never be visited, and decoding is pure Python (it holds the GIL that the
    FUSE loop needs)."""

    __slots__ = ("_raw", "_tree", "_what")

    def __init__(self, tree_id: bytes, raw: bytes) -> None:
        self._raw = raw
        self._tree: Tree | None = None
        self._what = f"tree {tree_id.hex()}"

    @property
    def tree(self) -> Tree:
        """Raises IntegrityError or UnsupportedFormatError for a bad tree."""
        if self._tree is None:
            self._tree = Tree.decode(self._raw, self._what)
            self._raw = b""
        return self._tree


SnapshotSource = Callable[[], tuple[list[Snapshot], dict[str, str]]]
"""Returns the snapshots to show and item id → item name; called in a worker thread."""


@dataclass
class _Inode:
    ino: int
    node: Node
    parent: int
    virtual: Path | None = None  # set for by-item/… directories and their symlinks
    snapshot: bytes = b""
    children: dict[bytes, int] | None = None
    names: list[bytes] = field(default_factory=list)


@dataclass
class _OpenFile:
    inode: _Inode
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
        trees: BlobCache[LazyTree],
        source: SnapshotSource,
        *,
        all_devices: bool = False,
        list_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._repo = repo
        self._cache = cache
        self._trees = trees
        self._source = source
        self._all_devices = all_devices
        self._list_ttl = list_ttl
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
            self._add(_Inode(ino, node, parent, virtual=path))
            self._virtual[path] = ino
        return ino

    def _get(self, ino: int) -> _Inode:
        inode = self._inodes.get(ino)
        if inode is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return inode

    def _path_of(self, inode: _Inode) -> str:
        parts: list[str] = []
        while inode.ino != pyfuse3.ROOT_INODE and inode.parent:
            parts.append(inode.node.name)
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
                self._add(_Inode(ino, node, self._virtual[path[:-1]], snapshot=snapshot.id))
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
                inode.node = Node(
                    path[-1],
                    NodeType.SYMLINK,
                    mode=0o777,
                    uid=self._uid,
                    gid=self._gid,
                    mtime_ns=now,
                    ctime_ns=now,
                    target=target,
                )
        for path, names in layout.dirs.items():
            inode = self._inodes[self._virtual[path]]
            children: dict[bytes, int] = {}
            for name in names:
                child = (*path, name)
                if child in layout.snapshots:
                    children[os.fsencode(name)] = self._snapshot_roots[layout.snapshots[child].id]
                elif child in self._virtual:
                    children[os.fsencode(name)] = self._virtual[child]
            inode.children = children
            inode.names = sorted(children)

    # --- snapshot contents ------------------------------------------------------------

    async def _children(self, inode: _Inode) -> dict[bytes, int]:
        if inode.virtual is not None:
            await self._refresh()
        if inode.children is not None:
            return inode.children
        if inode.node.type != NodeType.DIR:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        subtree = inode.node.subtree
        tree = Tree()
        if subtree:
            # Usually loaded already, by the read-ahead of the parent's listing or with
            # the spine below a snapshot root; else a worker thread reads it.
            lazy = self._trees.peek(subtree) or await self._in_thread(
                lambda: self._load_spine(subtree)
            )
            try:
                tree = lazy.tree
            except AgentError as e:
                log.warning("mount: %s: %s", self._path_of(inode), e)
                raise pyfuse3.FUSEError(errno.EIO) from e
        if inode.children is not None:  # another task loaded it meanwhile
            return inode.children
        children: dict[bytes, int] = {}
        below: list[bytes] = []
        for node in tree.nodes:
            children[os.fsencode(node.name)] = self._content_inode(inode, node)
            if node.subtree is not None:
                below.append(node.subtree)
        inode.children = children
        inode.names = sorted(children)
        if below:  # find, ls -R and file managers descend next: read those trees ahead
            self._trees.read_ahead(below[:_TREE_READ_AHEAD])
        return children

    def _load_spine(self, tree_id: bytes) -> LazyTree:
        """Load a tree and, while it holds a single directory, that directory's tree
        too: a snapshot mirrors absolute paths (``/home/u/docs``), so the way down to
        the backed-up folders is a chain that every visit walks, one lookup at a time."""
        first = self._trees.get(tree_id)
        tree = first.tree
        for _ in range(_SPINE_DEPTH):
            below = [n.subtree for n in tree.nodes if n.type == NodeType.DIR and n.subtree]
            if len(below) != 1:
                self._trees.read_ahead(below[:_TREE_READ_AHEAD])  # where the spine forks
                break
            tree = self._trees.get(below[0]).tree
        return first

    def _content_inode(self, parent: _Inode, node: Node) -> int:
        key = (parent.snapshot, node.dev, node.inode)
        linked = node.type == NodeType.FILE and node.nlink > 1 and node.inode != 0
        if linked and key in self._hard_links:
            return self._hard_links[key]
        ino = self._new_ino()
        self._add(_Inode(ino, node, parent.ino, snapshot=parent.snapshot))
        if linked:
            self._hard_links[key] = ino
        return ino

    def _attrs(self, inode: _Inode) -> pyfuse3.EntryAttributes:
        node = inode.node
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode.ino
        a.generation = 0
        timeout = _VIRTUAL_TIMEOUT if inode.virtual is not None else _CONTENT_TIMEOUT
        a.entry_timeout = timeout
        a.attr_timeout = timeout
        a.st_mode = _TYPE_BITS[node.type] | (node.mode & 0o7777)
        a.st_nlink = max(node.nlink, 1)
        a.st_uid = node.uid
        a.st_gid = node.gid
        a.st_rdev = os.makedev(node.rdev_major, node.rdev_minor)
        if node.type == NodeType.FILE:
            a.st_size = node.size
        elif node.type == NodeType.SYMLINK:
            a.st_size = len(os.fsencode(node.target or ""))
        else:
            a.st_size = 0
        a.st_blksize = _BLKSIZE
        a.st_blocks = (a.st_size + 511) // 512
        a.st_atime_ns = node.mtime_ns
        a.st_mtime_ns = node.mtime_ns
        a.st_ctime_ns = node.ctime_ns or node.mtime_ns
        return a

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
            return self._attrs(parent)
        if name == b"..":
            return self._attrs(self._get(parent.parent or pyfuse3.ROOT_INODE))
        ino = (await self._children(parent)).get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attrs(self._inodes[ino])

    async def getattr(self, inode: int, ctx: Any = None) -> Any:
        return self._attrs(self._get(inode))

    async def readlink(self, inode: int, ctx: Any) -> bytes:
        node = self._get(inode).node
        if node.type != NodeType.SYMLINK:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return os.fsencode(node.target or "")

    async def opendir(self, inode: int, ctx: Any) -> int:
        await self._children(self._get(inode))
        return inode

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        inode = self._get(fh)
        children = await self._children(inode)
        names = inode.names
        for i in range(start_id, len(names)):
            child = self._inodes[children[names[i]]]
            if not pyfuse3.readdir_reply(token, names[i], self._attrs(child), i + 1):
                break

    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        for key, value in self._get(inode).node.xattrs:
            if os.fsencode(key) == name:
                return value
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    async def listxattr(self, inode: int, ctx: Any) -> list[bytes]:
        return [os.fsencode(k) for k, _ in self._get(inode).node.xattrs]

    async def statfs(self, ctx: Any) -> Any:
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_namemax = 255
        return s

    async def open(self, inode: int, flags: int, ctx: Any) -> Any:
        node_inode = self._get(inode)
        if node_inode.node.type != NodeType.FILE:
            raise pyfuse3.FUSEError(
                errno.EISDIR if node_inode.node.type == NodeType.DIR else errno.EIO
            )
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise pyfuse3.FUSEError(errno.EROFS)
        opened = self._locate(node_inode)
        if opened.blob_ids:  # the first read is coming: start fetching what it needs
            self._cache.read_ahead(opened.blob_ids[:1])
        fh = self._next_fh
        self._next_fh += 1
        self._open[fh] = opened
        return pyfuse3.FileInfo(fh=fh, keep_cache=True)

    def _locate(self, inode: _Inode) -> _OpenFile:
        blob_ids = list(inode.node.content)
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
                return _OpenFile(inode, path, blob_ids[:i], starts, pos)
            starts.append(pos)
            pos += loc.raw_length
        return _OpenFile(inode, self._path_of(inode), blob_ids, starts, max(pos, inode.node.size))

    async def read(self, fh: int, off: int, size: int) -> bytes:
        opened = self._open.get(fh)
        if opened is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        end = min(off + size, opened.inode.node.size)
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
            return await trio.to_thread.run_sync(
                self._read_range, opened, off, end, first, last, abandon_on_cancel=True
            )
        except (AgentError, StorageError) as e:
            log.warning("mount: %s: bytes %d-%d unreadable: %s", opened.path, off, end, e)
            raise pyfuse3.FUSEError(errno.EIO) from e

    def _read_cached(
        self, opened: _OpenFile, off: int, end: int, first: int, last: int
    ) -> bytes | None:
        parts: list[bytes] = []
        for i in range(first, min(last + 1, len(opened.blob_ids))):
            data = self._cache.peek(opened.blob_ids[i])
            if data is None:
                return None
            start = opened.starts[i]
            parts.append(data[max(off - start, 0) : end - start])
        return _fill(b"".join(parts), end - off)

    def _read_ahead(self, opened: _OpenFile, last: int) -> None:
        want = min(last + 1 + _READ_AHEAD_BLOBS, len(opened.blob_ids))
        if want - opened.ahead_until > _READ_AHEAD_BLOBS // 2:
            self._cache.read_ahead(opened.blob_ids[max(opened.ahead_until, last + 1) : want])
            opened.ahead_until = want

    def _read_range(self, opened: _OpenFile, off: int, end: int, first: int, last: int) -> bytes:
        parts: list[bytes] = []
        for i in range(first, min(last + 1, len(opened.blob_ids))):
            data = self._cache.get(opened.blob_ids[i])
            start = opened.starts[i]
            parts.append(data[max(off - start, 0) : end - start])
        return _fill(b"".join(parts), end - off)

    async def release(self, fh: int) -> None:
        self._open.pop(fh, None)

    async def releasedir(self, fh: int) -> None:
        return None

    async def forget(self, inode_list: Any) -> None:
        return None  # inodes live as long as the mount


def _fill(data: bytes, size: int) -> bytes:
    """Zeros past the last blob, where a node says the file is longer than its blobs."""
    return data if len(data) >= size else data + bytes(size - len(data))
