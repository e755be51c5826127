"""``DirectoryTarget``: restore into a directory tree on the local filesystem.

Never writes outside the destination, even while someone who can write inside it swaps
directories for symlinks during the restore (a root restore into a user's home): every
operation is relative to a directory file descriptor opened with
``O_NOFOLLOW|O_DIRECTORY`` from the destination's own descriptor down, so no path is
ever resolved through a symlink. Files are created ``O_EXCL|O_NOFOLLOW`` at a temporary
name in their directory, given their metadata through their descriptor and renamed
into place within the held directory descriptor; other nodes get theirs through
``*at`` calls that do not follow symlinks, or through an ``O_PATH`` descriptor whose
type is checked first.

In a directory this restore made (mode 0700 and ours until its own metadata is applied
last, so nobody else can reach what is in it) a file whose mode the umask leaves alone
is created with that mode, and one that is to be ours gets no ``fchown``: the two
calls a file would otherwise cost are learnt once per directory (its group and that it
has no default ACL, either of which would change what a new file gets).

Privileged metadata (setuid/setgid bits on files, ``security.*`` extended attributes
such as file capabilities, device nodes) is restored only when asked for
(``privileged=True``) or when root restores to the original paths; otherwise it is
dropped and reported through ``on_drop`` (the job log).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import itertools
import os
import secrets
import stat
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from comet.agent.repository.tree import Node, NodeType
from comet.agent.restore.make_file import (
    NEW_FILE_FLAGS,
    first_zero_run,
    nonzero_ranges,
    pwrite_all,
)
from comet.agent.restore.target import RestorePath, TargetRefusedError
from comet.agent.restore.writer import FileWriter

# Files written in pack order stay open between writes; most small files are opened
# once, written and finished in one go, so this only bounds files written piecewise.
_MAX_OPEN = 256
# Directory descriptors kept open; an evicted one is reopened from its nearest open
# ancestor, again without following symlinks.
_MAX_DIRS = 256
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PRIVILEGED_BITS = stat.S_ISUID | stat.S_ISGID
_SPECIAL_TYPES = {
    NodeType.FIFO: stat.S_IFIFO,
    NodeType.CHARDEV: stat.S_IFCHR,
    NodeType.BLOCKDEV: stat.S_IFBLK,
}
# A file mode that needs nothing but the creating open: the permission bits only, and
# writable by its owner (a file written in parts is reopened for writing).
_PLAIN_MODE_BITS = 0o777
_ACL_DEFAULT = "system.posix_acl_default"
# Writes of at least this size go to a writing thread, with at most _WRITE_BEHIND bytes
# handed over and not yet written.
_BACKGROUND_MIN = 256 << 10
_WRITE_BEHIND = 4 << 20
# Files whose whole content comes in one write of at most _HAND_OVER_MAX bytes go to a
# file-writing process (``writer.FileWriter``), started once a restore has written
# _WRITER_AFTER of them itself: a restore of a few files does not pay for a process.
_HAND_OVER_MAX = 256 << 10
_WRITER_AFTER = 256


class Overwrite(enum.StrEnum):
    SKIP = "skip"
    OVERWRITE = "overwrite"
    IF_NEWER = "if_newer"


@dataclass(slots=True)
class _OpenFile:
    path: RestorePath
    parent: RestorePath  # the directory holding it (its descriptor does the work)
    final: str  # its name inside ``parent``
    node: Node
    size: int
    temp: str = ""  # its temporary name, given when it is created (a window of files
    # waiting for their content holds no names yet)
    # The mode the file is created with: its final one when nothing can change it and
    # nobody else can reach the directory (see the module docstring), else 0600.
    create_mode: int = 0o600
    moded: bool = False  # created with its final mode: no chmod needed
    owned: bool = False  # created as its node's owner: no chown needed
    created: bool = False  # the temporary file exists (it is made on the first write)
    inode: tuple[int, int] | None = None  # (dev, ino) once its descriptor was closed
    error: OSError | None = None  # a background write failed after it was handed over
    data: bytes | None = None  # its whole content, for the file-writing process


Dropped = Callable[[RestorePath, str], None]


def _ignore_drop(path: RestorePath, message: str) -> None:
    pass


def open_directory(path: Path | str, *, create: bool = False) -> int:
    """A descriptor of the directory ``path`` (made, with its missing parents, when
    ``create``). Symlinks in ``path`` are resolved once, up front; the resolved path is
    then walked component by component without following any symlink, so a folder
    swapped for a symlink meanwhile is refused instead of followed."""
    resolved = Path(os.path.realpath(path))
    fd = os.open("/", _DIR_FLAGS)
    try:
        for part in resolved.parts[1:]:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise TargetRefusedError(f"{resolved} is not a directory") from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def process_umask() -> int:
    """The process umask, read without changing it (os.umask would, for every thread)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


class _BackgroundWrites:
    """Large writes done on one worker thread, so that copying a chunk into its file
    overlaps opening the next (``os.pwrite`` releases the GIL): restoring large files
    was bound by the one thread that both waited for blobs and wrote them.

    A descriptor's writes are waited for (``drain``) before anything else is done with
    it: before its metadata (a write would change the restored mtime), before it is
    closed (so the number is not reused under a pending write) and before the file is
    renamed, and a failed write is raised there, for the file it belongs to. What is
    kept is bounded by ``_WRITE_BEHIND`` bytes in flight, however large the file: one
    worker writes in submission order, so when a descriptor's last write is done, so
    are all before it."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._queued: deque[tuple[int, Future[None], int]] = deque()  # fd, write, bytes
        self._bytes = 0
        self._last: dict[int, Future[None]] = {}
        self._failed: dict[int, BaseException] = {}

    def submit(self, fd: int, view: memoryview, offset: int) -> None:
        while self._queued and self._bytes + len(view) > _WRITE_BEHIND:
            self._queued[0][1].exception()  # wait for the oldest
            self._collect()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="comet-restore-write")
        future = self._pool.submit(pwrite_all, fd, view, offset)
        self._queued.append((fd, future, len(view)))
        self._bytes += len(view)
        self._last[fd] = future

    def _collect(self) -> None:
        """Forget finished writes, keeping the first failure of each descriptor."""
        queued = self._queued
        while queued and queued[0][1].done():
            fd, future, size = queued.popleft()
            self._bytes -= size
            error = future.exception()
            if error is not None:
                self._failed.setdefault(fd, error)

    def drain(self, fd: int) -> None:
        """Wait for every write to ``fd``; raise the first that failed."""
        last = self._last.pop(fd, None)
        if last is not None:
            last.exception()
            self._collect()
        error = self._failed.pop(fd, None)
        if error is not None:
            raise error

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()  # waits for what is queued
            self._pool = None
        self._queued.clear()
        self._bytes = 0
        self._last.clear()
        self._failed.clear()


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
        privileged: bool = False,
        on_drop: Dropped | None = None,
    ) -> None:
        self._root = Path("/") if original_paths else Path(dest)
        self._overwrite = overwrite
        self._as_root = os.geteuid() == 0
        self._owner = (os.geteuid(), os.getegid())
        self._umask = process_umask()
        # Restoring a system's own files as root keeps what they had; anywhere else
        # privileges are only restored when asked for.
        self._privileged = privileged or (original_paths and self._as_root)
        self._on_drop = on_drop or _ignore_drop
        self._files: dict[int, _OpenFile] = {}
        self._fds: OrderedDict[int, int] = OrderedDict()
        self._next = 1
        # The destination is opened once (symlinks in the path as given are resolved
        # first); nothing below it is ever reached through a symlink.
        self._dirs: OrderedDict[RestorePath, int] = OrderedDict()
        self._root_fd = open_directory(self._root, create=True)
        # Directories this restore made: nothing else is in them, so the names inside
        # need no existence check (the engine never hands over a name twice).
        self._created: set[RestorePath] = set()
        # Of those, the ones where a new file gets exactly the mode it is created with
        # and our own user and group (no default ACL, group ours).
        self._plain: set[RestorePath] = set()
        self._temp_tag = f".comet-{secrets.token_hex(4)}"
        self._temp_counter = itertools.count()
        self._where: RestorePath = ()  # the folder of the last file begun
        self._background = _BackgroundWrites()
        self._writer: FileWriter | None = None
        # Files the file-writing process was given, and its peak RSS (after ``close``).
        self.writer_files = self.writer_peak_rss = 0
        # Files written whole in one write before the writer started; -1: it can't be.
        self._whole_files = 0
        self._failed: list[tuple[RestorePath, Exception]] = []  # by the writer

    # --- directory descriptors ------------------------------------------------------

    def _show(self, path: RestorePath) -> str:
        return os.path.join(self._root, *path)

    def _dir(self, path: RestorePath) -> int:
        """The descriptor of the directory at ``path``, opened component by component
        without following symlinks. Raises TargetRefusedError for a non-directory."""
        if not path:
            return self._root_fd
        fd = self._dirs.get(path)
        if fd is not None:
            self._dirs.move_to_end(path)
            return fd
        parent = self._dir(path[:-1])
        try:
            fd = os.open(path[-1], _DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise TargetRefusedError(f"{self._show(path)} is not a directory") from None
            raise
        # Reopened by name: what is there now may not be the directory made and
        # examined, so its files go the long way.
        self._plain.discard(path)
        self._keep_dir(path, fd)
        return fd

    def _keep_dir(self, path: RestorePath, fd: int) -> None:
        self._dirs[path] = fd

    def _trim(self) -> None:
        """Close the least recently used directory descriptors. Called only at the
        start of an operation, so no descriptor in use is ever closed under it."""
        while len(self._dirs) > _MAX_DIRS:
            _, old = self._dirs.popitem(last=False)
            os.close(old)

    def _lstat(self, parent: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _may_replace(self, path: RestorePath, parent: int, node: Node) -> bool:
        """Apply the overwrite policy to an existing object named ``path[-1]``."""
        if path[:-1] in self._created:
            return True
        st = self._lstat(parent, path[-1])
        if st is None:
            return True
        if stat.S_ISDIR(st.st_mode):
            raise TargetRefusedError(f"{self._show(path)} exists and is a directory")
        if self._overwrite == Overwrite.OVERWRITE:
            return True
        if self._overwrite == Overwrite.IF_NEWER:
            return node.mtime_ns > st.st_mtime_ns
        return False

    def _temp_name(self, name: str) -> str:
        # Unique per target by a counter; the random tag keeps two restores into one
        # directory apart. Creation uses O_EXCL, so a clash fails rather than overwrites.
        return f".{name[:100]}{self._temp_tag}{next(self._temp_counter):x}"

    # --- metadata -------------------------------------------------------------------

    def _mode(self, path: RestorePath, node: Node) -> int:
        mode = node.mode & 0o7777
        if mode & _PRIVILEGED_BITS and not self._privileged and node.type != NodeType.DIR:
            self._on_drop(
                path,
                f"setuid/setgid bits dropped (mode {mode:o} restored as "
                f"{mode & ~_PRIVILEGED_BITS:o}); restore with --restore-privileged to keep them",
            )
            mode &= ~_PRIVILEGED_BITS
        return mode

    def _xattrs(self, path: RestorePath, node: Node) -> list[tuple[str, bytes]]:
        if self._privileged or not node.xattrs:
            return list(node.xattrs)
        kept = [(k, v) for k, v in node.xattrs if not k.startswith("security.")]
        if len(kept) != len(node.xattrs):
            names = ", ".join(k for k, _ in node.xattrs if k.startswith("security."))
            self._on_drop(path, f"{names} dropped; restore with --restore-privileged to keep them")
        return kept

    def _apply_fd(
        self, path: RestorePath, fd: int, node: Node, *, owned: bool = False, moded: bool = False
    ) -> None:
        """Metadata through the object's own descriptor (files and directories).
        Ownership first: chown clears setuid/setgid bits, so the mode comes after.
        ``owned``: it already has the node's owner; ``moded``: its mode (see
        ``_plain_mode``)."""
        if self._as_root and not owned:
            os.fchown(fd, node.uid, node.gid)
        if node.xattrs:
            for name, value in self._xattrs(path, node):
                try:
                    os.setxattr(fd, name, value)
                except OSError as e:
                    raise TargetRefusedError(f"cannot set extended attribute {name}: {e}") from e
        if not moded:
            os.fchmod(fd, self._mode(path, node))
        os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))

    def _plain_mode(self, node: Node) -> int | None:
        """The node's mode if creating a file with it gives exactly that mode here (no
        special bits, owner-writable, nothing the umask removes), else None."""
        mode = node.mode & 0o7777
        if mode & ~_PLAIN_MODE_BITS or not mode & 0o200 or mode & self._umask:
            return None
        return mode

    def _learn_plain(self, path: RestorePath, fd: int) -> None:
        """Record whether new files in the directory just made at ``path`` get their
        creating mode and our user and group: they do unless it has a default ACL or
        a group other than ours (setgid or BSD group semantics would pass that on)."""
        if os.fstat(fd).st_gid != self._owner[1]:
            return
        try:
            os.getxattr(fd, _ACL_DEFAULT)
            return  # a default ACL: new files' permissions come from it
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
                return
        self._plain.add(path)

    def _apply_link(self, path: RestorePath, parent: int, name: str, node: Node) -> None:
        """Metadata of a symlink, never following it."""
        if self._as_root:
            os.chown(name, node.uid, node.gid, dir_fd=parent, follow_symlinks=False)
        for key, value in self._xattrs(path, node):
            try:
                os.setxattr(f"/proc/self/fd/{parent}/{name}", key, value, follow_symlinks=False)
            except OSError as e:
                raise TargetRefusedError(f"cannot set extended attribute {key}: {e}") from e
        os.utime(name, ns=(node.mtime_ns, node.mtime_ns), dir_fd=parent, follow_symlinks=False)

    def _apply_special(self, path: RestorePath, parent: int, name: str, node: Node) -> None:
        """Metadata of a fifo or device node through an O_PATH descriptor, after checking
        it is still the node just made (not something swapped in under its name)."""
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            st = os.fstat(fd)
            if stat.S_IFMT(st.st_mode) != _SPECIAL_TYPES[node.type] or st.st_nlink != 1:
                raise TargetRefusedError(f"{self._show(path)} was replaced during the restore")
            where = f"/proc/self/fd/{fd}"
            if self._as_root:
                os.chown(where, node.uid, node.gid)
            for key, value in self._xattrs(path, node):
                try:
                    os.setxattr(where, key, value)
                except OSError as e:
                    raise TargetRefusedError(f"cannot set extended attribute {key}: {e}") from e
            os.chmod(where, self._mode(path, node))
            os.utime(where, ns=(node.mtime_ns, node.mtime_ns))
        finally:
            os.close(fd)

    # --- directories ----------------------------------------------------------------

    def _make_dir(self, path: RestorePath, parent: int) -> bool:
        os.mkdir(path[-1], 0o700, dir_fd=parent)
        self._created.add(path)
        fd = self._dir(path)  # opened now: a symlink swapped in since mkdir is refused
        self._learn_plain(path, fd)
        return True

    def directory(self, path: RestorePath, node: Node | None) -> bool:
        self._trim()
        if not path:
            return False
        parent = self._dir(path[:-1])
        if path[:-1] in self._created:
            return self._make_dir(path, parent)
        st = self._lstat(parent, path[-1])
        if st is None:
            return self._make_dir(path, parent)
        if stat.S_ISDIR(st.st_mode):
            self._dir(path)
            return False
        if self._overwrite != Overwrite.OVERWRITE:
            raise TargetRefusedError(f"{self._show(path)} exists and is not a directory")
        os.unlink(path[-1], dir_fd=parent)
        return self._make_dir(path, parent)

    def finish_directory(self, path: RestorePath, node: Node) -> None:
        self._settle()
        self._trim()
        if path:
            self._apply_fd(path, self._dir(path), node)

    # --- files ----------------------------------------------------------------------

    def begin_file(self, path: RestorePath, node: Node, size: int) -> int | None:
        self._trim()
        where = path[:-1]
        if where == self._where:
            where = self._where  # one tuple for the files of a folder, not one each
        else:
            self._where = where
        # Opened (or found open) first: a folder reopened by name loses its plain status.
        if not self._may_replace(path, self._dir(where), node):
            return None
        handle = self._next
        self._next += 1
        f = _OpenFile(path, where, path[-1], node, size)
        if where in self._plain:
            mode = self._plain_mode(node)
            if mode is not None:
                f.create_mode, f.moded = mode, True
            f.owned = (node.uid, node.gid) == self._owner
        self._files[handle] = f
        return handle

    def _fd(self, handle: int, *, whole: bool = False) -> int:
        """The handle's open descriptor, creating the file on first use. ``whole`` says
        the first write fills the file, so it needs no truncation to its size."""
        fd = self._fds.get(handle)
        if fd is not None:
            self._fds.move_to_end(handle)
            return fd
        if len(self._fds) >= _MAX_OPEN:
            old_handle, old = self._fds.popitem(last=False)
            evicted = self._files[old_handle]
            try:
                self._background.drain(old)
            except OSError as e:  # raised when that file is next written or ended
                evicted.error = evicted.error or e
            st = os.fstat(old)
            evicted.inode = (st.st_dev, st.st_ino)
            os.close(old)
        f = self._files[handle]
        parent = self._dir(f.parent)
        if f.created:
            fd = os.open(f.temp, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != f.inode:
                os.close(fd)
                raise TargetRefusedError(f"{f.temp} was replaced during the restore")
        else:
            f.temp = self._temp_name(f.final)
            fd = os.open(f.temp, NEW_FILE_FLAGS, f.create_mode, dir_fd=parent)
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
        # whole filesystem blocks among them stay holes. Data without a zero run is
        # written at once.
        f = self._files[handle]
        if f.error is not None:
            raise f.error
        if offset == 0 and len(data) == f.size and not f.created and self._hand_over(data):
            f.data = data  # made by the writer at end_file
            return
        first = first_zero_run(data)
        view = memoryview(data)
        if first < 0:
            whole = offset == 0 and len(data) == f.size
            self._pwrite(self._fd(handle, whole=whole), view, offset)
            return
        for start, end in nonzero_ranges(data, first):
            self._pwrite(self._fd(handle), view[start:end], offset + start)

    def _pwrite(self, fd: int, view: memoryview, offset: int) -> None:
        if len(view) >= _BACKGROUND_MIN:
            self._background.submit(fd, view, offset)
        else:
            pwrite_all(fd, view, offset)

    def _close_fd(self, handle: int) -> None:
        fd = self._fds.pop(handle, None)
        if fd is not None:
            try:
                self._background.drain(fd)
            finally:
                os.close(fd)

    def _hand_over(self, data: bytes) -> bool:
        """Whether a file written whole with ``data`` goes to the file-writing process,
        which is started here once enough files were."""
        if self._writer is not None:
            return len(data) <= _HAND_OVER_MAX
        if len(data) > _HAND_OVER_MAX or self._whole_files < 0:
            return False
        self._whole_files += 1
        if self._whole_files <= _WRITER_AFTER:
            return False
        try:
            self._writer = FileWriter()
        except OSError:  # no process to be had (a process limit): write them here
            self._whole_files = -1
            return False
        return True

    def end_file(self, handle: int) -> None:
        self._trim()
        f = self._files[handle]
        if self._writer is not None and not f.created and (f.data is not None or not f.size):
            self._send(handle, f, self._writer)
            return
        fd = self._fds.pop(handle, None)
        if fd is None:  # never written (empty), or its descriptor was closed meanwhile
            fd = self._fd(handle)
            del self._fds[handle]
        try:
            self._background.drain(fd)  # every byte is in before the metadata
            if f.error is not None:
                raise f.error
            self._apply_fd(f.path, fd, f.node, owned=f.owned, moded=f.moded)
        finally:
            os.close(fd)
        parent = self._dir(f.parent)
        os.replace(f.temp, f.final, src_dir_fd=parent, dst_dir_fd=parent)
        del self._files[handle]

    def _send(self, handle: int, f: _OpenFile, writer: FileWriter) -> None:
        """Hand a complete file to the writer, with what ``_apply_fd`` would give it."""
        node = f.node
        del self._files[handle]
        writer.add(
            f.path,
            f.parent,
            self._dir(f.parent),
            temp=self._temp_name(f.final),
            final=f.final,
            create_mode=f.create_mode,
            size=f.size,
            data=f.data or b"",
            owner=None if f.owned or not self._as_root else (node.uid, node.gid),
            xattrs=tuple(self._xattrs(f.path, node)) if node.xattrs else (),
            mode=None if f.moded else self._mode(f.path, node),
            mtime_ns=node.mtime_ns,
        )

    def deferred_failures(self, *, wait: bool) -> list[tuple[RestorePath, Exception]]:
        """Files ``end_file`` accepted that the file-writing process then failed to make,
        with why (OSError or TargetRefusedError); ``wait``: first wait until every file
        handed over is made. Each failure is returned once."""
        self._take_failures(wait=wait)
        failed, self._failed = self._failed, []
        return failed

    def _take_failures(self, *, wait: bool) -> None:
        if self._writer is None:
            return
        for path, error in self._writer.failures(wait=wait):
            assert isinstance(path, tuple)
            reason = TargetRefusedError(error) if isinstance(error, str) else error
            self._failed.append((path, reason))

    def _settle(self) -> None:
        """Wait until every file handed over is made: before anything that needs them
        in place (a hard link to one) or that may stop them being made (a directory's
        final mode)."""
        self._take_failures(wait=True)

    def abort_file(self, handle: int) -> None:
        with contextlib.suppress(OSError):
            self._close_fd(handle)
        f = self._files.pop(handle, None)
        if f is not None and f.created:
            with contextlib.suppress(OSError, TargetRefusedError):
                os.unlink(f.temp, dir_fd=self._dir(f.parent))

    # --- other nodes ----------------------------------------------------------------

    def _place(self, path: RestorePath, node: Node, make: str) -> None:
        """Create a non-file node at a temporary name with ``make``, then rename."""
        self._trim()
        parent = self._dir(path[:-1])
        if not self._may_replace(path, parent, node):
            return
        temp = self._temp_name(path[-1])
        if make == "symlink":
            assert node.target is not None
            os.symlink(node.target, temp, dir_fd=parent)
        elif make == "fifo":
            os.mkfifo(temp, 0o600, dir_fd=parent)
        else:
            kind = stat.S_IFCHR if node.type == NodeType.CHARDEV else stat.S_IFBLK
            os.mknod(
                temp, kind | 0o600, os.makedev(node.rdev_major, node.rdev_minor), dir_fd=parent
            )
        try:
            if make == "symlink":
                self._apply_link(path, parent, temp, node)
            else:
                self._apply_special(path, parent, temp, node)
            os.replace(temp, path[-1], src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=parent)
            raise

    def symlink(self, path: RestorePath, node: Node) -> None:
        if node.target is None or "\0" in node.target:
            raise TargetRefusedError("symlink without a valid target")
        self._place(path, node, "symlink")

    def hardlink(self, path: RestorePath, node: Node, existing: RestorePath) -> None:
        self._settle()
        self._trim()
        parent = self._dir(path[:-1])
        source_dir = self._dir(existing[:-1])
        st = self._lstat(source_dir, existing[-1])
        if st is None or not stat.S_ISREG(st.st_mode):
            raise TargetRefusedError(
                f"hard link source {self._show(existing)} is not a regular file"
            )
        if not self._may_replace(path, parent, node):
            return
        temp = self._temp_name(path[-1])
        os.link(existing[-1], temp, src_dir_fd=source_dir, dst_dir_fd=parent, follow_symlinks=False)
        os.replace(temp, path[-1], src_dir_fd=parent, dst_dir_fd=parent)

    def special(self, path: RestorePath, node: Node) -> None:
        if node.type == NodeType.FIFO:
            self._place(path, node, "fifo")
        elif node.type in (NodeType.CHARDEV, NodeType.BLOCKDEV):
            if not self._as_root:
                raise TargetRefusedError("device nodes can only be restored as root")
            if not self._privileged:
                raise TargetRefusedError(
                    "device node dropped; restore with --restore-privileged to create it"
                )
            self._place(path, node, "device")
        else:
            raise TargetRefusedError(f"{node.type} nodes are not restored")

    def close(self) -> None:
        for handle in list(self._files):
            self.abort_file(handle)
        if self._writer is not None:
            self._writer.close()
            self.writer_files, self.writer_peak_rss = self._writer.files, self._writer.peak_rss
            self._writer = None
        self._background.close()
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1
