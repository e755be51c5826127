"""The archiver: walks a source, stores file content and directory trees as blobs, and
returns the root tree id. Per-file problems become warnings; repository, storage and
cancellation errors propagate.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import re
import stat
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import IO, TYPE_CHECKING

from comet.agent.backup import parent as prev
from comet.agent.backup.metadata import node_from_stat, node_type, read_xattrs
from comet.agent.backup.options import FilesSource, ProgramSource
from comet.agent.backup.parent import EntryDoc, ParentDir
from comet.agent.backup.read_small import read_whole
from comet.agent.backup.reader import SmallFileReader
from comet.agent.cancel import CancelToken
from comet.agent.errors import ProgramFailedError, RepositoryError, SourceError
from comet.agent.process_group import bounded_reader, pipe_reader, stop_process_group
from comet.agent.reporter import BackupReporter, JobWarning
from comet.agent.repository.blob_writer import BlobWriter
from comet.agent.repository.format import BlobType
from comet.agent.repository.repository import Repository
from comet.agent.repository.tree import Node, NodeType, Tree

if TYPE_CHECKING:
    from comet.agent.backup.read_small import Answer

_STDERR_KEEP = 4096
_HOLE_FILL = 1 << 20
_ZERO_FILL = bytes(_HOLE_FILL)
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_NOATIME = getattr(os, "O_NOATIME", 0)

_MISSING_INCLUDE = (
    "is included but does not exist on this device; create it, or correct the Protected"
    " Item's include paths"
)

# An include trie: name -> sub-trie, or None where a whole include path starts.
_Trie = dict[str, "_Trie | None"]


def _build_trie(includes: Sequence[str]) -> _Trie | None:
    """Returns None when ``/`` itself is included."""
    trie: _Trie = {}
    for raw in includes:
        if not os.path.isabs(raw):
            raise SourceError(f"include path {raw!r} is not absolute")
        parts = [p for p in os.path.normpath(raw).split("/") if p]
        if not parts:
            return None
        level = trie
        for i, part in enumerate(parts):
            if i == len(parts) - 1:
                level[part] = None
                break
            sub = level.get(part, {})
            if sub is None:
                break  # an enclosing path is already included
            level[part] = sub
            level = sub
    return trie


class _Fallback:
    """``_save_opened``'s answer for "save this entry the stat-first way"."""


_FALLBACK = _Fallback()


def _listed_regular(entry: os.DirEntry[str]) -> bool:
    """True if the directory listing says ``entry`` is a regular file (no system call
    unless the filesystem leaves the type out)."""
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _open_file(path: str) -> int:
    try:
        return os.open(path, _OPEN_FLAGS | _NOATIME)
    except PermissionError:
        return os.open(path, _OPEN_FLAGS)  # O_NOATIME needs ownership


# Files opened ahead of the one being saved. A file of a few KiB not in the page
# cache waited for its read in turn (a first backup of 1,000,000 small files on a busy
# machine spent ~40 % of its walk in os.read); asked for this many files early, the
# kernel reads them while the walk hashes and stores the ones before.
_OPEN_AHEAD = 32
# Only a file's start is asked for: a small file whole, a large one's first read.
_AHEAD_BYTES = 256 << 10
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)


# An entry as the walk takes it: its path, the parent snapshot's entry, and its file
# open for reading, None if opening failed, or _STAT_FIRST: saved the stat-first way.
_Entry = tuple[str, "EntryDoc | None", "int | None"]
_STAT_FIRST = -1


class _OpenAhead:
    """Takes a directory's entries in order, opening the files to be read up to
    ``_OPEN_AHEAD`` entries before the walk gets to them and asking the kernel to
    start reading each (``POSIX_FADV_WILLNEED``; the read itself stays where it was).
    Never opens past an entry saved the stat-first way, so no descriptor is held while
    the walk descends into a subdirectory. Holds nothing per entry beyond the window:
    a directory of a million names costs what its listing costs."""

    __slots__ = ("_count", "_decide", "_entries", "_next")

    def __init__(
        self, count: int, decide: Callable[[int], tuple[str, EntryDoc | None, bool] | None]
    ) -> None:
        # decide(i): entry i's path, entry in the parent snapshot and whether it is
        # opened first; None if it is excluded.
        self._count = count
        self._decide = decide
        self._entries: dict[int, _Entry | None] = {}
        self._next = 0

    def take(self, i: int) -> _Entry | None:
        """Entry ``i`` (None if excluded); an open descriptor in it is now the caller's
        to close."""
        entries = self._entries
        end = min(self._count, i + _OPEN_AHEAD)
        j = max(self._next, i)
        while j < end:
            decided = self._decide(j)
            j += 1
            if decided is None:
                entries[j - 1] = None
                continue
            path, pdoc, first = decided
            entries[j - 1] = (path, pdoc, _open_ahead(path) if first else _STAT_FIRST)
            if not first:
                break
        self._next = j
        return entries.pop(i)

    def close(self) -> None:
        """Close what was opened but not taken (the walk stopped early)."""
        for entry in self._entries.values():
            if entry is not None and entry[2] is not None and entry[2] != _STAT_FIRST:
                os.close(entry[2])
        self._entries.clear()


# The reader process reads files below this size. Its gain is the system calls it makes
# in the walk's stead, a fixed cost per file; the content it sends is copied on the way
# (memory and CPU in both processes) and larger files are read here as before.
READER_MAX = 32 << 10
# Directories of fewer entries are read here: the walk waits for the reader's first
# answer in every directory, which only pays over many files.
READER_MIN_ENTRIES = 48
# Files asked of the reader process at a time (see _ReadAhead).
_READ_AHEAD = 32
# Set as an entry's descriptor when the reader process read the file: its answer is
# the _ReadAhead's ``answer``.
_ANSWERED = -2


class _ReadAhead:
    """``_OpenAhead``'s counterpart when a ``SmallFileReader`` runs: the files to be
    read are asked of it, up to ``_READ_AHEAD`` entries before the walk gets to them,
    in requests of several paths, and taken back in order. A file it answers with
    None is opened here instead and saved as before. Answers come back in the order
    asked, so none may be owed while the walk descends into a subdirectory: like
    ``_OpenAhead`` it never asks past an entry saved the stat-first way, and before the
    walk saves any other entry that way (one listed as a file but found to be a
    directory) ``hold`` takes the answers still owed and keeps them: at most
    ``_READ_AHEAD`` files of less than ``READER_MAX`` each."""

    __slots__ = (
        "_count",
        "_decide",
        "_entries",
        "_held",
        "_next",
        "_reader",
        "_stop",
        "answer",
    )

    def __init__(
        self,
        count: int,
        decide: Callable[[int], tuple[str, EntryDoc | None, bool] | None],
        reader: SmallFileReader,
    ) -> None:
        self._count = count
        self._decide = decide
        self._reader = reader
        self._entries: dict[int, _Entry | None] = {}
        self._next = 0
        self._stop = -1  # the last entry decided to be saved the stat-first way
        self._held: deque[Answer] = deque()
        self.answer: Answer = None  # the last answer taken

    def take(self, i: int) -> _Entry | None:
        """Entry ``i`` (None if excluded). Its descriptor is ``_ANSWERED`` (the
        reader's answer is then ``self.answer``), ``_STAT_FIRST``, or an open
        descriptor (or None) as ``_OpenAhead`` gives."""
        reader = self._reader
        held = self._held
        if self._next <= i or (
            i > self._stop
            and self._next < self._count
            and reader.waiting + len(held) <= _READ_AHEAD // 2
        ):
            entries = self._entries
            end = min(self._count, max(self._next, i) + _READ_AHEAD)
            j = max(self._next, i)
            paths = []
            while j < end:
                decided = self._decide(j)
                j += 1
                if decided is None:
                    entries[j - 1] = None
                    continue
                path, pdoc, first = decided
                if not first:
                    entries[j - 1] = (path, pdoc, _STAT_FIRST)
                    self._stop = j - 1
                    break
                entries[j - 1] = (path, pdoc, _ANSWERED)
                paths.append(path)
            self._next = j
            reader.submit(paths)
        entry = self._entries.pop(i)
        if entry is not None and entry[2] == _ANSWERED:
            self.answer = held.popleft() if held else reader.take()
            if self.answer is None:
                return entry[0], entry[1], _open_ahead(entry[0])
        return entry

    def hold(self) -> None:
        """Take the answers still owed and keep them: the walk is about to save an
        entry the stat-first way, which may descend into a directory."""
        reader = self._reader
        while reader.waiting:
            self._held.append(reader.take())

    def close(self) -> None:
        """Take the answers still owed (the walk stopped early), so the next
        directory's answers are its own."""
        reader = self._reader
        while reader.waiting:
            reader.take()
        self._entries.clear()
        self._held.clear()
        self.answer = None


def _open_ahead(path: str) -> int | None:
    try:
        fd = _open_file(path)
    except OSError:
        return None  # the stat-first way says what is wrong
    if _WILLNEED is not None:
        with contextlib.suppress(OSError):  # not a regular file after all: ESPIPE
            os.posix_fadvise(fd, 0, _AHEAD_BYTES, _WILLNEED)
    return fd


def _child(parent: ParentDir | None, name: str) -> EntryDoc | None:
    return None if parent is None else parent.docs.get(name)


class _SparseReader:
    """Reads a sparse file without reading its holes: ``SEEK_DATA``/``SEEK_HOLE`` find
    them and the buffer is zero-filled instead. Records the holes it skipped, so chunks
    that lie inside one are known to be all zeros without looking at them."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size
        self._pos = 0
        self._data_end = 0
        self._hole_end = 0
        self._holes: list[tuple[int, int]] = []

    def __call__(self, buf: memoryview) -> int:
        pos = self._pos
        if pos >= self._data_end and pos >= self._hole_end:
            try:
                data = os.lseek(self._fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                if pos >= self._size:  # at the end (or the file grew): read normally
                    n = os.preadv(self._fd, [buf], pos)
                    self._pos = pos + n
                    return n
                data = self._size  # only a hole follows
            if data > pos:
                self._hole_end = data
                self._holes.append((pos, data))
            else:
                self._data_end = os.lseek(self._fd, pos, os.SEEK_HOLE)
        if pos < self._hole_end:
            n = min(len(buf), self._hole_end - pos, _HOLE_FILL)
            buf[:n] = _ZERO_FILL[:n]
        elif pos < self._data_end:
            n = os.preadv(self._fd, [buf[: self._data_end - pos]], pos)
        else:
            n = os.preadv(self._fd, [buf], pos)  # the file grew: read to its real end
        self._pos = pos + n
        return n

    def in_hole(self, start: int, end: int) -> bool:
        """True if ``[start, end)`` lies inside one skipped hole. Ranges are asked
        in increasing order."""
        holes = self._holes
        while holes and holes[0][1] <= start:
            del holes[0]
        return bool(holes) and holes[0][0] <= start and end <= holes[0][1]


class Archiver:
    """One backup's walk. Not thread-safe; sealing and uploads run inside the writer."""

    def __init__(
        self,
        repo: Repository,
        writer: BlobWriter,
        *,
        rescan_unchanged: bool,
        reporter: BackupReporter,
        cancel: CancelToken,
    ) -> None:
        self._repo = repo
        self._writer = writer
        self._rescan = rescan_unchanged
        self._reporter = reporter
        self._cancel = cancel
        self._chunker = repo.new_chunker()
        # Below the chunker's minimum size a file is exactly one chunk.
        self._small = int(repo.chunker_params["min_size"])
        self._hardlinks: dict[tuple[int, int], tuple[tuple[str, ...], tuple[bytes, ...]]] = {}
        self._zero_ids: dict[int, bytes] = {}  # blob ids of all-zero chunks by length
        self._excludes: tuple[str, ...] = ()
        self._regexes: tuple[re.Pattern[str], ...] = ()
        self._reader: SmallFileReader | None = None
        # The reader process's own peak memory (VmHWM less file pages), once it ended.
        self.reader_files = self.reader_peak_rss = 0  # the reading process's, once done
        self.warnings: list[JobWarning] = []
        self.files = 0
        self.dirs = 0
        self.total_bytes = 0
        self.bytes_read = 0
        self.blobs = 0

    def warn(self, path: str, message: str, *, names_user_file: bool = True) -> None:
        warning = JobWarning(path, message, names_user_file)
        self.warnings.append(warning)
        self._reporter.warning(warning)

    # --- sources --------------------------------------------------------------------

    def save_files(self, source: FilesSource, parent: ParentDir | None) -> bytes:
        """Store the included paths; return the root tree id (absolute-path layout)."""
        self._excludes = tuple(source.excludes)
        try:
            self._regexes = tuple(re.compile(r) for r in source.exclude_regexes)
        except re.error as e:
            raise SourceError(f"invalid exclude regex: {e}") from e
        if not source.includes:
            raise SourceError("nothing to back up: no include paths")
        trie = _build_trie(source.includes)
        try:
            self._reader = SmallFileReader(min(self._small, READER_MAX), self._cancel)
        except OSError:
            self._reader = None  # the walk reads every file itself (tests use this)
        try:
            if trie is None:
                return self._save_children("/", (), parent)
            return self._save_trie("/", (), trie, parent)
        finally:
            if self._reader is not None:
                self._reader.close()
                self.reader_files = self._reader.files
                self.reader_peak_rss = self._reader.peak_rss
                self._reader = None

    def save_program(self, source: ProgramSource) -> bytes:
        """Store a command's stdout as one file; return the root tree id."""
        name = source.save_as
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            raise SourceError(f"invalid file name for program output: {name!r}")
        shell = isinstance(source.command, str)
        try:
            proc = subprocess.Popen(
                source.command,
                shell=shell,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                # Its own process group, so a cancel stops the whole pipeline the shell
                # started, not just the shell.
                start_new_session=True,
            )
        except OSError as e:
            raise ProgramFailedError(f"cannot start {source.command!r}: {e.strerror}") from e
        assert proc.stdout is not None and proc.stderr is not None
        stderr = bytearray()
        drain = threading.Thread(target=_drain, args=(proc.stderr, stderr), daemon=True)
        drain.start()
        try:
            read_into = pipe_reader(proc.stdout.fileno(), self._cancel)
            content, size = self._chunk_stream(read_into, name)
        except BaseException:
            stop_process_group(proc)  # SIGTERM, then SIGKILL after a short grace
            drain.join()
            raise
        status = proc.wait()
        drain.join()
        message = stderr.decode(errors="replace").strip()
        if status != 0:
            detail = f": {message[-500:]}" if message else ""
            raise ProgramFailedError(
                f"program {source.command!r} exited with status {status}{detail}"
            )
        if message:
            self.warn(
                name, f"the program wrote to stderr: {message[-1000:]}", names_user_file=False
            )
        now = self._repo.now_ns()
        self.files = 1
        self.total_bytes = size
        node = Node(
            name=name,
            type=NodeType.FILE,
            mode=0o600,
            uid=os.getuid(),
            gid=os.getgid(),
            mtime_ns=now,
            ctime_ns=now,
            size=size,
            content=tuple(content),
        )
        return self._store_tree([node])

    # --- walking --------------------------------------------------------------------

    def _excluded(self, path: str, name: str) -> bool:
        for glob in self._excludes:
            if fnmatch.fnmatchcase(path, glob) or fnmatch.fnmatchcase(name, glob):
                return True
        return any(r.search(path) for r in self._regexes)

    def _parent_dir(self, subtree: bytes | None, path: str) -> ParentDir | None:
        if subtree is None:
            return None
        try:
            return ParentDir.load(self._repo, subtree)
        except RepositoryError as e:
            self.warn(path, f"previous snapshot's directory is unreadable, rescanning: {e}")
            return None

    def _prev_node(self, pdoc: EntryDoc | None, path: str, parent: ParentDir | None) -> Node | None:
        """The previous snapshot's entry as a ``Node`` (an entry that changed); None,
        after a warning, if it is malformed: the entry is then saved as new."""
        if pdoc is None:
            return None
        try:
            return Node.from_json(pdoc)
        except (ValueError, KeyError, TypeError) as e:
            what = parent.what if parent is not None else "tree"
            self.warn(
                path,
                "previous snapshot's entry is unreadable, saving it as new: "
                f"{what} has a malformed node ({e})",
            )
            return None

    def _save_trie(
        self, dirpath: str, comps: tuple[str, ...], trie: _Trie, parent: ParentDir | None
    ) -> bytes:
        nodes: list[Node | EntryDoc] = []
        for name in sorted(trie):
            self._cancel.check()
            path = os.path.join(dirpath, name)
            sub = trie[name]
            pdoc = _child(parent, name)
            if sub is None:
                if not os.path.lexists(path):  # not "vanished": it may never have existed
                    self.warn(path, _MISSING_INCLUDE)
                    continue
                node = self._save_path(path, (*comps, name), name, pdoc, parent)
            else:
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    self.warn(path, _MISSING_INCLUDE)
                    continue
                except OSError as e:
                    self.warn(path, f"cannot read include path's parent: {e.strerror}")
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    self.warn(path, "is not a directory; includes below it are skipped")
                    continue
                self.dirs += 1
                pdir = self._prev_node(pdoc, path, parent)
                psub = pdir.subtree if pdir is not None and pdir.type == NodeType.DIR else None
                subtree = self._save_trie(path, (*comps, name), sub, self._parent_dir(psub, path))
                node = node_from_stat(name, st, NodeType.DIR, subtree=subtree)
            if node is not None:
                nodes.append(node)
        return self._store_tree(nodes)

    def _save_children(self, path: str, comps: tuple[str, ...], parent: ParentDir | None) -> bytes:
        try:
            with os.scandir(path) as it:
                # The listing's file type (d_type; no system call) picks the way in.
                entries = sorted((entry.name, _listed_regular(entry)) for entry in it)
        except OSError as e:
            self.warn(path, f"cannot list directory: {e.strerror}")
            entries = []
        # The parent's tree is reused as it is while every entry so far is the parent's
        # own entry object (same stat, same subtree): nothing to encode, hash or add.
        reused = parent is not None and not self._rescan
        prefix = path if path.endswith("/") else path + "/"
        filtered = bool(self._excludes or self._regexes)
        rescan = self._rescan

        def decide(i: int) -> tuple[str, EntryDoc | None, bool] | None:
            name, regular = entries[i]
            child = prefix + name
            if filtered and self._excluded(child, name):
                return None
            pdoc = _child(parent, name)
            # A file whose content will be read whatever its stat says is opened first.
            first = regular and (rescan or not prev.is_file(pdoc))
            return child, pdoc, first

        nodes: list[Node | EntryDoc] = []
        reader = self._reader
        ahead = (
            _OpenAhead(len(entries), decide)
            if reader is None or len(entries) < READER_MIN_ENTRIES
            else _ReadAhead(len(entries), decide, reader)
        )
        try:
            for i in range(len(entries)):
                self._cancel.check()
                entry = ahead.take(i)
                if entry is None:
                    continue
                child, pdoc, fd = entry
                name = entries[i][0]
                node: Node | EntryDoc | _Fallback | None = _FALLBACK
                if fd == _ANSWERED:
                    assert isinstance(ahead, _ReadAhead) and ahead.answer is not None
                    pnode = self._prev_node(pdoc, child, parent)
                    node = self._save_answer(child, (*comps, name), name, pnode, ahead.answer)
                    if pnode is None:
                        pdoc = None
                elif fd != _STAT_FIRST:
                    pnode = self._prev_node(pdoc, child, parent)
                    node = self._save_opened(child, (*comps, name), name, pnode, fd)
                    if pnode is None:
                        pdoc = None  # malformed: warned once, saved as new
                if node is _FALLBACK:
                    if isinstance(ahead, _ReadAhead):
                        ahead.hold()
                    node = self._save_path(child, (*comps, name), name, pdoc, parent)
                assert not isinstance(node, _Fallback)
                if node is not None:
                    nodes.append(node)
                    reused = reused and node is pdoc
        finally:
            ahead.close()
        if reused:
            assert parent is not None
            if len(nodes) == parent.count:
                self.blobs += 1
                return parent.tree_id
        return self._store_tree(nodes)

    def _save_path(
        self,
        path: str,
        comps: tuple[str, ...],
        name: str,
        pdoc: EntryDoc | None,
        parent: ParentDir | None,
    ) -> Node | EntryDoc | None:
        """Save one entry the stat-first way; ``pdoc``: its entry in ``parent``, the
        previous snapshot's directory. Returns ``pdoc`` itself when it is reused."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.warn(path, "vanished before it could be backed up")
            return None
        except OSError as e:
            self.warn(path, f"cannot read metadata: {e.strerror}")
            return None
        kind = node_type(st)
        if kind is None:
            self.warn(path, "unknown file type, skipped")
            return None
        if pdoc is not None and not self._rescan and prev.same_stat(pdoc, st, kind):
            same = self._save_same(path, comps, st, pdoc)
            if same is not None:
                return same
        pnode = self._prev_node(pdoc, path, parent)
        xattrs = self._xattrs(path, path, st, pnode)
        if kind == NodeType.FILE:
            return self._save_file(path, comps, name, st, xattrs, pnode)
        if kind == NodeType.DIR:
            self.dirs += 1
            psub = pnode.subtree if pnode is not None and pnode.type == NodeType.DIR else None
            subtree = self._save_children(path, comps, self._parent_dir(psub, path))
            return node_from_stat(name, st, kind, xattrs=xattrs, subtree=subtree)
        if kind == NodeType.SYMLINK:
            try:
                target = os.readlink(path)
            except OSError as e:
                self.warn(path, f"cannot read symlink: {e.strerror}")
                return None
            return node_from_stat(name, st, kind, xattrs=xattrs, target=target)
        # fifos, devices, sockets: metadata only, never opened
        return node_from_stat(name, st, kind, xattrs=xattrs)

    def _xattrs(
        self, path: str, source: str | int, st: os.stat_result, pnode: Node | None
    ) -> tuple[tuple[str, bytes], ...]:
        """The xattrs of ``path`` (read through ``source``, its path or descriptor), or
        the previous snapshot's when its ctime and inode say they cannot have changed."""
        if _same_xattrs(pnode, st):
            assert pnode is not None
            return pnode.xattrs
        xattrs, problem = read_xattrs(source)
        if problem:
            self.warn(path, problem)
        return xattrs

    def _save_opened(
        self, path: str, comps: tuple[str, ...], name: str, pnode: Node | None, fd: int | None
    ) -> Node | _Fallback | None:
        """A file the directory listed as regular and whose content is to be read
        (new, or rescanned), open as ``fd`` (closed here; None if it could not be
        opened): its stat and xattrs are taken from the descriptor, which saves the
        ``lstat`` and the path lookups of the stat-first way. ``O_NOFOLLOW`` refuses a
        symlink and ``O_NONBLOCK`` a fifo's wait, as on that way. Anything unexpected
        (it cannot be opened, it is no longer a regular file) gives ``_FALLBACK``: the
        stat-first way then saves it, or words the warning, exactly as before."""
        if fd is None:
            return _FALLBACK
        try:
            try:
                st = os.fstat(fd)
            except OSError:
                return _FALLBACK
            if not stat.S_ISREG(st.st_mode):
                return _FALLBACK
            xattrs = self._xattrs(path, fd, st, pnode)
            return self._save_file(path, comps, name, st, xattrs, pnode, fd=fd)
        finally:
            os.close(fd)

    def _save_answer(
        self, path: str, comps: tuple[str, ...], name: str, pnode: Node | None, answer: Answer
    ) -> Node | None:
        """A file the reader process read whole (``answer``): what ``_save_opened``
        does with a file it opened, on the stat, content and xattrs it sent."""
        assert answer is not None
        seq, fields, data, one_read, changed, xattrs, problem = answer
        st = os.stat_result(seq, fields)
        if _same_xattrs(pnode, st):
            assert pnode is not None
            xattrs = pnode.xattrs
        else:
            xattrs = tuple(xattrs)
            if problem:
                self.warn(path, problem)
        return self._save_file(path, comps, name, st, xattrs, pnode, read=(data, one_read, changed))

    def _save_same(
        self, path: str, comps: tuple[str, ...], st: os.stat_result, pdoc: EntryDoc
    ) -> Node | EntryDoc | None:
        """An entry whose stat matches the previous snapshot: return the parent's entry
        (or, for a directory whose contents changed, a node with the new subtree)
        without reading xattrs or building a node. None means "save it normally"
        (which also reports an entry that is malformed)."""
        try:
            if not prev.plain(pdoc):
                Node.from_json(pdoc)  # checked as a decoded tree checks it (rare)
            kind = pdoc["type"]
            if kind == NodeType.DIR:
                psub = prev.subtree_id(pdoc)
            elif kind == NodeType.FILE:
                content = prev.content_ids(pdoc)
        except (ValueError, KeyError, TypeError):
            return None
        if kind == NodeType.DIR:
            self.dirs += 1
            subtree = self._save_children(path, comps, self._parent_dir(psub, path))
            if subtree == psub:
                return pdoc
            return replace(Node.from_json(pdoc), subtree=subtree)
        if kind == NodeType.FILE:
            # Hard links depend on what else the walk saw: those take the normal path.
            if st.st_nlink > 1 or pdoc.get("link") is not None:
                return None
            has = self._writer.has
            if not all(has(blob_id) for blob_id in content):
                return None
            self._reporter.file_unchanged(path, st.st_size)
            self.blobs += len(content)
            self.files += 1
            self.total_bytes += st.st_size  # the entry's size: same_stat compared them
            return pdoc
        return pdoc  # symlinks (a changed target is a new inode), fifos, devices

    def _save_file(
        self,
        path: str,
        comps: tuple[str, ...],
        name: str,
        st: os.stat_result,
        xattrs: tuple[tuple[str, bytes], ...],
        pnode: Node | None,
        *,
        fd: int | None = None,
        read: tuple[bytes, bool, bool] | None = None,
    ) -> Node | None:
        """``fd``: the file already open, ``st`` its ``fstat``; ``read``: its content
        as the reader process read it (data, in one read, changed while read)."""
        link_key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and (first := self._hardlinks.get(link_key)) is not None:
            self.files += 1
            return node_from_stat(
                name, st, NodeType.FILE, xattrs=xattrs, link=first[0], content=first[1]
            )
        if not self._rescan and self._unchanged(st, pnode):
            assert pnode is not None
            content = pnode.content
            size = st.st_size
            self._reporter.file_unchanged(path, st.st_size)
            self.blobs += len(content)
        else:
            if read is not None:
                result: tuple[tuple[bytes, ...], int] | None = self._store_read(path, st, *read)
            elif fd is None:
                result = self._read_file(path, st)
            else:
                result = self._read_open(fd, path, st)
            if result is None:
                return None
            content, size = result
        self.files += 1
        self.total_bytes += size
        if st.st_nlink > 1:
            self._hardlinks[link_key] = (comps, content)
        return node_from_stat(name, st, NodeType.FILE, xattrs=xattrs, size=size, content=content)

    def _unchanged(self, st: os.stat_result, pnode: Node | None) -> bool:
        return (
            pnode is not None
            and pnode.type == NodeType.FILE
            and pnode.link is None
            and pnode.size == st.st_size
            and pnode.mtime_ns == st.st_mtime_ns
            and pnode.ctime_ns == st.st_ctime_ns
            and pnode.inode == st.st_ino
            and all(self._writer.has(blob_id) for blob_id in pnode.content)
        )

    def _read_file(self, path: str, st: os.stat_result) -> tuple[tuple[bytes, ...], int] | None:
        try:
            fd = _open_file(path)
        except FileNotFoundError:
            self.warn(path, "vanished before it could be read")
            return None
        except OSError as e:
            self.warn(path, f"cannot open: {e.strerror}")
            return None
        try:
            try:
                before = os.fstat(fd)
            except OSError as e:
                self.warn(path, f"read error: {e.strerror}")
                return None
            if not stat.S_ISREG(before.st_mode) or before.st_ino != st.st_ino:
                self.warn(path, "was replaced while being backed up, skipped")
                return None
            return self._read_open(fd, path, before)
        finally:
            os.close(fd)

    def _read_open(
        self, fd: int, path: str, before: os.stat_result
    ) -> tuple[tuple[bytes, ...], int] | None:
        """Store the content of the regular file open as ``fd`` (``before``: its
        ``fstat``); its blob ids and size, or None after a warning."""
        try:
            self._reporter.file_started(path, before.st_size)
            if before.st_size < self._small:
                small = self._read_small(fd, before.st_size)
                if small is not None:
                    content, size, one_read = small
                    if one_read:
                        # One read returned exactly the size fstat gave: the stored
                        # bytes are what that read saw, so there is no "while being
                        # read" to check (a change since the walk's lstat shows in the
                        # next backup's stat comparison), and a stat per file is saved.
                        return tuple(content), size
                    return self._check_unchanged(fd, path, before, size, content)
                os.lseek(fd, 0, os.SEEK_SET)  # it grew past one chunk: read it normally
            if before.st_blocks * 512 < before.st_size:
                sparse = _SparseReader(fd, before.st_size)
                content, size = self._chunk_stream(
                    bounded_reader(sparse, self._cancel), path, sparse
                )
            else:
                read_into = bounded_reader(lambda buf: os.readv(fd, [buf]), self._cancel)
                content, size = self._chunk_stream(read_into, path)
            return self._check_unchanged(fd, path, before, size, content)
        except OSError as e:
            self.warn(path, f"read error: {e.strerror}")
            return None

    def _check_unchanged(
        self, fd: int, path: str, before: os.stat_result, size: int, content: list[bytes]
    ) -> tuple[tuple[bytes, ...], int]:
        after = os.fstat(fd)
        if after.st_size != size or after.st_mtime_ns != before.st_mtime_ns:
            self.warn(path, "changed while being read; the stored copy may be inconsistent")
        return tuple(content), size

    def _read_small(self, fd: int, expected: int) -> tuple[list[bytes], int, bool] | None:
        """Read a file that fits in one chunk with plain reads, skipping the chunker and
        its buffer copy: its blob ids, size, and whether one read returned exactly the
        ``expected`` size. None if it turns out to hold a chunk's worth or more."""
        # Asking for the size fstat gave, plus one byte to notice a file that grew: a
        # read of ``limit`` would allocate a chunk-sized buffer per file and shrink it,
        # leaving the heap fragmented by thousands of small files.
        data, one_read = read_whole(fd, expected, self._small)
        if len(data) >= self._small:
            return None
        self._cancel.check()
        return self._store_small(data), len(data), one_read

    def _store_read(
        self, path: str, st: os.stat_result, data: bytes, one_read: bool, changed: bool
    ) -> tuple[tuple[bytes, ...], int]:
        """Store a small file the reader process read whole; as ``_read_open`` does
        with one it reads itself, "changed while being read" is only looked at when
        more than one read was needed."""
        self._reporter.file_started(path, st.st_size)
        self._cancel.check()
        content = self._store_small(data)
        if not one_read and changed:
            self.warn(path, "changed while being read; the stored copy may be inconsistent")
        return tuple(content), len(data)

    def _store_small(self, data: bytes) -> list[bytes]:
        """Hand a file's whole content (less than a chunk) to the writer: its blob ids."""
        size = len(data)
        if size == 0:
            return []
        blob_id = self._repo.sealer.blob_id(BlobType.DATA, data)
        self._writer.add(BlobType.DATA, blob_id, data)
        self.blobs += 1
        self.bytes_read += size
        self._reporter.bytes_read(size)
        return [blob_id]

    def _chunk_stream(
        self,
        read_into: Callable[[memoryview], int],
        path: str,
        sparse: _SparseReader | None = None,
    ) -> tuple[list[bytes], int]:
        content: list[bytes] = []
        size = 0
        sealer = self._repo.sealer
        for chunk in self._chunker.chunks(read_into):
            self._cancel.check()
            if sparse is not None and sparse.in_hole(size, size + len(chunk)):
                blob_id = self._zero_ids.get(len(chunk)) or sealer.blob_id(BlobType.DATA, chunk)
                self._zero_ids[len(chunk)] = blob_id
            else:
                blob_id = sealer.blob_id(BlobType.DATA, chunk)
            if not self._writer.has(blob_id):
                self._writer.add(BlobType.DATA, blob_id, chunk.tobytes())
            content.append(blob_id)
            size += len(chunk)
            self.blobs += 1
            self.bytes_read += len(chunk)
            self._reporter.bytes_read(len(chunk))
        return content, size

    def _store_tree(self, nodes: list[Node] | list[Node | EntryDoc]) -> bytes:
        data = Tree(tuple(map(prev.to_node, nodes))).encode()
        tree_id = self._repo.sealer.blob_id(BlobType.TREE, data)
        self._writer.add(BlobType.TREE, tree_id, data)
        self.blobs += 1
        return tree_id


def _same_xattrs(pnode: Node | None, st: os.stat_result) -> bool:
    """True if the previous snapshot's xattrs of this entry are still its xattrs: its
    ctime and inode are the same (setting or removing an xattr updates ctime)."""
    return (
        pnode is not None
        and pnode.ctime_ns == st.st_ctime_ns
        and pnode.inode == st.st_ino
        and pnode.dev == st.st_dev
    )


def _drain(stream: IO[bytes], keep: bytearray) -> None:
    """Read a pipe to its end, keeping only its last bytes (bounded memory)."""
    while block := stream.read(65536):
        keep += block
        if len(keep) > _STDERR_KEEP:
            del keep[: len(keep) - _STDERR_KEEP]
