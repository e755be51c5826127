"""``DirectoryTarget``: restore into a directory tree on the local filesystem.

Never writes outside the destination: every parent directory is checked with ``lstat``
(a symlink or non-directory is never followed), each file is written to a temporary name
in its final directory and renamed into place, and device nodes are only made as root.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import os
import secrets
import stat
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from comet.agent.repository.tree import Node, NodeType
from comet.agent.restore.target import RestorePath, TargetRefusedError

# Files written in pack order stay open between writes; most small files are opened
# once, written and finished in one go, so this only bounds files written piecewise.
_MAX_OPEN = 256
_HOLE_MIN = 4096
_ZERO_BLOCK = bytes(_HOLE_MIN)
_ZERO_RUN = bytes(64 * _HOLE_MIN)


class Overwrite(enum.StrEnum):
    SKIP = "skip"
    OVERWRITE = "overwrite"
    IF_NEWER = "if_newer"


@dataclass
class _OpenFile:
    final: str
    temp: str
    node: Node
    size: int
    created: bool = False  # the temporary file exists (it is made on the first write)


def _nonzero_ranges(data: bytes, first_zero: int) -> Iterator[tuple[int, int]]:
    """The ``(start, end)`` ranges of ``data`` outside runs of at least ``_HOLE_MIN``
    zero bytes; ``first_zero`` is where the first such run starts."""
    pos, zero, size = 0, first_zero, len(data)
    while True:
        if zero > pos:
            yield pos, zero
        end = zero + _HOLE_MIN
        while end + len(_ZERO_RUN) <= size and data[end : end + len(_ZERO_RUN)] == _ZERO_RUN:
            end += len(_ZERO_RUN)
        while end + _HOLE_MIN <= size and data[end : end + _HOLE_MIN] == _ZERO_BLOCK:
            end += _HOLE_MIN
        pos = end
        zero = data.find(_ZERO_BLOCK, pos)
        if zero < 0:
            if pos < size:
                yield pos, size
            return


class DirectoryTarget:
    """Restores under ``dest`` (as ``dest/<absolute original path>``), or at the original
    locations when ``original_paths`` is True (``dest`` is then ignored)."""

    random_access = True

    def __init__(
        self,
        dest: Path | str,
        *,
        overwrite: Overwrite = Overwrite.SKIP,
        original_paths: bool = False,
    ) -> None:
        self._root = Path("/") if original_paths else Path(dest)
        self._root.mkdir(parents=True, exist_ok=True)
        self._overwrite = overwrite
        self._as_root = os.geteuid() == 0
        self._files: dict[int, _OpenFile] = {}
        self._fds: OrderedDict[int, int] = OrderedDict()
        self._next = 1
        self._checked: set[RestorePath] = {()}
        # Directories this restore made: nothing else is in them, so the names inside
        # need no existence check (the engine never hands over a name twice).
        self._created: set[RestorePath] = set()
        self._temp_tag = secrets.token_hex(4)
        self._temp_counter = itertools.count()

    # --- paths ----------------------------------------------------------------------

    def _path(self, path: RestorePath) -> str:
        return os.path.join(self._root, *path)

    def _check_parent(self, path: RestorePath) -> str:
        """Verify every ancestor below the root is a real directory; return the path."""
        if path[:-1] in self._checked:
            return self._path(path)  # a checked directory's ancestors were checked first
        for i in range(1, len(path)):
            prefix = path[:i]
            if prefix in self._checked:
                continue
            st = os.lstat(self._path(prefix))
            if not stat.S_ISDIR(st.st_mode):
                raise TargetRefusedError(f"{self._path(prefix)} is not a directory")
            self._checked.add(prefix)
        return self._path(path)

    def _may_replace(self, path: RestorePath, final: str, node: Node) -> bool:
        """Apply the overwrite policy to an existing object at ``final``."""
        if path[:-1] in self._created:
            return True
        try:
            st = os.lstat(final)
        except FileNotFoundError:
            return True
        if stat.S_ISDIR(st.st_mode):
            raise TargetRefusedError(f"{final} exists and is a directory")
        if self._overwrite == Overwrite.OVERWRITE:
            return True
        if self._overwrite == Overwrite.IF_NEWER:
            return node.mtime_ns > st.st_mtime_ns
        return False

    def _temp_name(self, final: str) -> str:
        # Unique per target by a counter; the random tag keeps two restores into one
        # directory apart. Creation uses O_EXCL, so a clash fails rather than overwrites.
        head, tail = os.path.split(final)
        return f"{head}/.{tail[:100]}.comet-{self._temp_tag}{next(self._temp_counter):x}"

    # --- metadata -------------------------------------------------------------------

    def _apply(self, path: str, node: Node, *, fd: int | None = None) -> None:
        link = node.type == NodeType.SYMLINK
        if self._as_root:
            if fd is not None:
                os.fchown(fd, node.uid, node.gid)
            else:
                os.chown(path, node.uid, node.gid, follow_symlinks=False)
        for name, value in node.xattrs:
            try:
                os.setxattr(path, name, value, follow_symlinks=False)
            except OSError as e:
                raise TargetRefusedError(f"cannot set extended attribute {name}: {e}") from e
        if fd is not None:
            os.fchmod(fd, node.mode & 0o7777)
            os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))
            return
        if not link:
            os.chmod(path, node.mode & 0o7777)
        os.utime(path, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)

    # --- directories ----------------------------------------------------------------

    def directory(self, path: RestorePath, node: Node | None) -> bool:
        if not path:
            return False
        full = self._check_parent(path)
        if path[:-1] in self._created:
            os.mkdir(full, 0o700)
            self._checked.add(path)
            self._created.add(path)
            return True
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            os.mkdir(full, 0o700)
            self._checked.add(path)
            self._created.add(path)
            return True
        if stat.S_ISDIR(st.st_mode):
            self._checked.add(path)
            return False
        if self._overwrite != Overwrite.OVERWRITE:
            raise TargetRefusedError(f"{full} exists and is not a directory")
        os.unlink(full)
        os.mkdir(full, 0o700)
        self._checked.add(path)
        self._created.add(path)
        return True

    def finish_directory(self, path: RestorePath, node: Node) -> None:
        if path:
            self._apply(self._path(path), node)

    # --- files ----------------------------------------------------------------------

    def begin_file(self, path: RestorePath, node: Node, size: int) -> int | None:
        final = self._check_parent(path)
        if not self._may_replace(path, final, node):
            return None
        handle = self._next
        self._next += 1
        self._files[handle] = _OpenFile(final, self._temp_name(final), node, size)
        return handle

    def _fd(self, handle: int, *, whole: bool = False) -> int:
        """The handle's open descriptor, creating the file on first use. ``whole`` says
        the first write fills the file, so it needs no truncation to its size."""
        fd = self._fds.get(handle)
        if fd is not None:
            self._fds.move_to_end(handle)
            return fd
        if len(self._fds) >= _MAX_OPEN:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        f = self._files[handle]
        if f.created:
            fd = os.open(f.temp, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(f.temp, flags, 0o600)
            f.created = True
            if whole:
                self._fds[handle] = fd
                return fd
            try:
                os.ftruncate(fd, f.size)  # holes are left where all-zero chunks are skipped
            except BaseException:
                os.close(fd)
                raise
        self._fds[handle] = fd
        return fd

    def write(self, handle: int, offset: int, data: bytes) -> None:
        # The file is created truncated to its size, so zero runs are left unwritten:
        # whole filesystem blocks among them stay holes. ``find`` of a zero block is
        # far cheaper than counting zeros, and data without one is written at once.
        first = data.find(_ZERO_BLOCK)
        view = memoryview(data)
        if first < 0:
            whole = offset == 0 and len(data) == self._files[handle].size
            self._pwrite(self._fd(handle, whole=whole), view, offset)
            return
        for start, end in _nonzero_ranges(data, first):
            self._pwrite(self._fd(handle), view[start:end], offset + start)

    @staticmethod
    def _pwrite(fd: int, view: memoryview, offset: int) -> None:
        while view:
            n = os.pwrite(fd, view, offset)
            view = view[n:]
            offset += n

    def _close_fd(self, handle: int) -> None:
        fd = self._fds.pop(handle, None)
        if fd is not None:
            os.close(fd)

    def end_file(self, handle: int) -> None:
        f = self._files[handle]
        fd = self._fd(handle)
        try:
            self._apply(f.temp, f.node, fd=fd)
        finally:
            self._close_fd(handle)
        os.replace(f.temp, f.final)
        del self._files[handle]

    def abort_file(self, handle: int) -> None:
        with contextlib.suppress(OSError):
            self._close_fd(handle)
        f = self._files.pop(handle, None)
        if f is not None and f.created:
            with contextlib.suppress(OSError):
                os.unlink(f.temp)

    # --- other nodes ----------------------------------------------------------------

    def _place(self, path: RestorePath, node: Node, make: str) -> None:
        """Create a non-file node at a temporary name with ``make``, then rename."""
        final = self._check_parent(path)
        if not self._may_replace(path, final, node):
            return
        temp = self._temp_name(final)
        if make == "symlink":
            assert node.target is not None
            os.symlink(node.target, temp)
        elif make == "fifo":
            os.mkfifo(temp, 0o600)
        else:
            kind = stat.S_IFCHR if node.type == NodeType.CHARDEV else stat.S_IFBLK
            os.mknod(temp, kind | 0o600, os.makedev(node.rdev_major, node.rdev_minor))
        try:
            self._apply(temp, node)
            os.replace(temp, final)
        except BaseException:
            os.unlink(temp)
            raise

    def symlink(self, path: RestorePath, node: Node) -> None:
        if node.target is None or "\0" in node.target:
            raise TargetRefusedError("symlink without a valid target")
        self._place(path, node, "symlink")

    def hardlink(self, path: RestorePath, node: Node, existing: RestorePath) -> None:
        final = self._check_parent(path)
        source = self._check_parent(existing)
        if not stat.S_ISREG(os.lstat(source).st_mode):
            raise TargetRefusedError(f"hard link source {source} is not a regular file")
        if not self._may_replace(path, final, node):
            return
        temp = self._temp_name(final)
        os.link(source, temp, follow_symlinks=False)
        os.replace(temp, final)

    def special(self, path: RestorePath, node: Node) -> None:
        if node.type == NodeType.FIFO:
            self._place(path, node, "fifo")
        elif node.type in (NodeType.CHARDEV, NodeType.BLOCKDEV):
            if not self._as_root:
                raise TargetRefusedError("device nodes can only be restored as root")
            self._place(path, node, "device")
        else:
            raise TargetRefusedError(f"{node.type} nodes are not restored")

    def close(self) -> None:
        for handle in list(self._files):
            self.abort_file(handle)
