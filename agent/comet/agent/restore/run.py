"""``run_restore``: walk a snapshot's trees and hand its nodes to a RestoreTarget.

For random-access targets every file is begun first, then each needed blob is read
once, pack by pack in offset order, and written to every place that uses it. Reading and
opening blobs runs on a worker thread (``PackPrefetcher``) ahead of the writes; a file is
finished as soon as its last piece is written. Hard links are made and directory
metadata applied deepest-first at the end.
Sequential targets (archives, programs, simulation) get one file at a time, in offset
order, with its exact size known at ``begin_file``: the walk is planned first, then
replayed while ``OrderedBlobs`` reads the planned blobs with the same batched, pack-
ordered reads a directory restore uses.
Names are validated here, so no target ever sees ``..``, ``/``, NUL or empty names.

Unreadable data (a blob that is damaged or in no index) fails the restore with a
``DamagedDataError`` naming the file, unless ``allow_partial`` is set: then the damaged
byte ranges are zero-filled and every damaged file is reported as a warning.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from comet.agent.cancel import CancelToken
from comet.agent.errors import (
    BlobNotFoundError,
    DamagedDataError,
    IntegrityError,
    LocalPathError,
    RestoreError,
    os_error_sentence,
)
from comet.agent.reporter import JobWarning, NullRestoreReporter, RestoreReporter
from comet.agent.repository.format import BlobType
from comet.agent.repository.index import BlobLocation
from comet.agent.repository.repository import Repository
from comet.agent.repository.tree import Node, NodeType, Tree
from comet.agent.restore.names import parse_path, show_path, valid_name
from comet.agent.restore.ordered import OrderedBlobs
from comet.agent.restore.prefetch import Blobs, PackPrefetcher, PackWork
from comet.agent.restore.target import RestorePath, RestoreTarget, TargetRefusedError

# Zero-filled ranges (missing data) are written in pieces of at most this size.
_ZEROS_MAX = 1 << 20
# Random-access targets: files are begun and filled in windows of this many files (or
# pieces), so a restore's layout state (~2 KiB a file with the target's own) stays
# bounded however many files a snapshot holds; a pack whose blobs straddle two windows
# is read once per window (only the blobs each window needs). Windows of 1,024 files
# saved ~10 MB of a small-file restore's peak (35 k files: 98 -> 88 MB) but made 3.8x
# the vault reads (1,336 -> 5,066), each a GET on S3 or SFTP; 4,096 keeps the reads.
_WINDOW_FILES = 4_096
_WINDOW_PIECES = 65_536
# Errors that mean "this data cannot be read" (as opposed to storage being unreachable).
_UNREADABLE = (IntegrityError, BlobNotFoundError)


@dataclass(frozen=True)
class DamagedFile:
    """A file restored with ``damaged_bytes`` zero-filled because its data was unreadable."""

    path: str
    damaged_bytes: int


@dataclass(frozen=True)
class RestoreResult:
    files: int
    dirs: int
    others: int
    bytes_written: int
    skipped: int  # entries not restored: ``kept`` existing ones plus ``refused`` ones
    warnings: tuple[JobWarning, ...]
    damaged: tuple[DamagedFile, ...] = ()
    kept: int = 0  # files left as they were by the overwrite policy
    refused: int = 0  # entries the target could not take, each with a warning


@dataclass(slots=True)
class _Piece:
    """One range of a file: a blob's content, or a zero-filled range of missing data."""

    blob_id: bytes
    offset: int
    length: int
    location: BlobLocation | None  # None: the data is missing and is zero-filled


@dataclass(slots=True)
class _File:
    path: RestorePath
    handle: int
    pieces: list[_Piece] = field(default_factory=list)
    failed: bool = False
    ended: bool = False
    remaining: int = 0  # pieces not yet written (random-access targets)
    damaged: int = 0
    damage: str = ""


def _parse_selection(paths: Sequence[str] | None) -> list[RestorePath] | None:
    if paths is None:
        return None
    try:
        return [parse_path(p) for p in paths]
    except ValueError as e:
        raise RestoreError(f"invalid path to restore: {e}") from None


# A full or read-only disk fails every later file as well: the restore stops with one
# sentence instead of a warning per file.
_FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def _reason(error: Exception, path: Sequence[str]) -> str:
    """Why the entry at ``path`` was not restored, as a sentence; raises
    LocalPathError for a cause that stops the whole restore."""
    if isinstance(error, OSError):
        if error.errno in _FATAL_ERRNOS:
            failure = LocalPathError.from_os_error(error, path="")
            failure.message = f"restore stopped at {show_path(path)}: {failure.message}"
            raise failure from error
        return os_error_sentence(error)
    return str(error)


def _require_selection(
    repo: Repository, root: bytes, snapshot_id: str, selection: list[RestorePath] | None
) -> None:
    """RestoreError naming the first selected path the snapshot does not hold, before
    anything is written (a restore of nothing is not a success)."""
    for path in selection or ():
        tree = repo.load_tree(root)
        for depth, name in enumerate(path):
            node = next((n for n in tree.nodes if n.name == name), None)
            last = depth == len(path) - 1
            if node is None or (not last and (node.type != NodeType.DIR or not node.subtree)):
                raise RestoreError(
                    f"{show_path(path)} is not in snapshot {snapshot_id[:8]}; nothing was"
                    f" restored ('comet ls {snapshot_id[:8]} {show_path(path[:depth]) or '/'}"
                    " --vault VAULT' lists what is there)"
                )
            if node.subtree is not None and not last:
                tree = repo.load_tree(node.subtree)


def _dir_metadata(node: Node) -> Node:
    """What ``finish_directory`` applies of a directory's node, kept until the end of
    a random-access restore: without its subtree id, inode, user and group names the
    node is about half the size (16,000 directories at a million files)."""
    return Node(
        node.name,
        node.type,
        node.mode,
        node.uid,
        node.gid,
        mtime_ns=node.mtime_ns,
        xattrs=node.xattrs,
    )


def _zero_chunks(length: int) -> Iterator[tuple[int, bytes]]:
    """Zeros for a range of missing data, made only when some is missing (a module-level
    buffer was resident in every restore)."""
    zeros = bytes(min(length, _ZEROS_MAX))
    done = 0
    while done < length:
        n = min(len(zeros), length - done)
        yield done, zeros if n == len(zeros) else zeros[:n]
        done += n


class _Restorer:
    def __init__(
        self,
        repo: Repository,
        target: RestoreTarget,
        reporter: RestoreReporter,
        cancel: CancelToken,
        selection: list[RestorePath] | None,
        allow_partial: bool,
    ) -> None:
        self._repo = repo
        self._target = target
        self._reporter = reporter
        self._cancel = cancel
        self._selection = selection
        self._partial = allow_partial
        self._random = target.random_access
        # Optional target attribute: targets that cannot store hard links (zip, programs)
        # get every linked name as a full file.
        self._hard_links = bool(getattr(target, "hard_links", True))
        self._files: list[_File] = []  # random-access targets: the current window
        self._window_pieces = 0
        # Files that other names may hard-link to (link count above one), by path.
        self._done: dict[RestorePath, _File] = {}
        self._links: list[tuple[RestorePath, Node, RestorePath]] = []
        self._dirs: list[tuple[RestorePath, Node]] = []
        # Sequential targets: the planned target calls, replayed once the walk is done.
        self._plan: list[Callable[[], None]] = []
        self._needs: list[tuple[bytes, BlobLocation]] = []
        self._planned: set[RestorePath] = set()
        self._blobs: OrderedBlobs | None = None
        self._failed_dirs: set[RestorePath] = set()
        self.warnings: list[JobWarning] = []
        self.damaged: list[DamagedFile] = []
        self.files = self.dirs = self.others = self.bytes = self.kept = self.refused = 0

    def warn(self, path: Sequence[str], message: str) -> None:
        warning = JobWarning(show_path(path), message)
        self.warnings.append(warning)
        self._reporter.warning(warning)

    def _selected(self, path: RestorePath) -> bool:
        return self._selection is None or any(path[: len(s)] == s for s in self._selection)

    def _ancestor(self, path: RestorePath) -> bool:
        assert self._selection is not None
        return any(len(s) > len(path) and s[: len(path)] == path for s in self._selection)

    def refuse(self, path: Sequence[str], message: str) -> None:
        """An entry not restored: counted and named in the warnings."""
        self.refused += 1
        self.warn(path, message)

    def run(self, root: Tree) -> None:
        self._target.directory((), None)
        self._walk((), root, self._selection is None)
        if self._random:
            self._fill_window()
            self._deferred_failures(wait=True)
        else:
            self._replay()
        for path, node, existing in self._links:
            self._link(path, node, existing)
        for path, node in reversed(self._dirs):
            try:
                self._target.finish_directory(path, node)
            except (OSError, TargetRefusedError) as e:
                self.warn(path, f"cannot set directory metadata: {_reason(e, path)}")

    # --- walking --------------------------------------------------------------------

    def _walk(self, path: RestorePath, tree: Tree, selected: bool) -> None:
        seen: set[str] = set()
        for node in tree.nodes:
            self._cancel.check()
            if not valid_name(node.name):
                self.refuse(path, f"refused an entry with an unsafe name {node.name!r}")
                continue
            if node.name in seen:
                self.refuse((*path, node.name), "refused a duplicate entry of the same name")
                continue
            seen.add(node.name)
            child = (*path, node.name)
            sel = selected or self._selected(child)
            if not sel and (node.type != NodeType.DIR or not self._ancestor(child)):
                continue
            if not self._random:
                self._plan_node(child, node, sel)
                continue
            # What ``_guarded`` does, inline: no partial and extra call for every node.
            try:
                if node.type == NodeType.FILE:
                    self._file(child, node)
                else:
                    self._node(child, node, sel)
            except (OSError, TargetRefusedError) as e:
                self.refuse(child, f"not restored: {_reason(e, child)}")

    def _guarded(self, path: RestorePath, call: Callable[[], None]) -> bool:
        """Run a target call; a per-node refusal becomes a counted warning."""
        try:
            call()
        except (OSError, TargetRefusedError) as e:
            self.refuse(path, f"not restored: {_reason(e, path)}")
            return False
        return True

    # --- sequential targets: plan, then replay --------------------------------------

    def _plan_node(self, path: RestorePath, node: Node, selected: bool) -> None:
        plan = self._plan
        if node.type == NodeType.DIR:
            created = [False]

            def begin() -> None:
                created[0] = self._target.directory(path, node)

            plan.append(lambda: self._step(path, begin, is_dir=True))
            self._walk(path, self._subtree(path, node), selected)

            def finish() -> None:
                if selected or created[0]:
                    self._target.finish_directory(path, node)
                self.dirs += 1

            plan.append(lambda: self._step(path, finish))
            return
        if node.type == NodeType.FILE:
            if self._hard_links and node.link is not None and tuple(node.link) in self._planned:
                existing = tuple(node.link)
                plan.append(lambda: self._step(path, lambda: self._link_node(path, node, existing)))
                return
            pieces, missing, why = self._layout(path, node)
            self._planned.add(path)
            self._needs.extend((p.blob_id, p.location) for p in pieces if p.location is not None)
            plan.append(
                lambda: self._step(
                    path, lambda: self._file_planned(path, node, pieces, missing, why)
                )
            )
            return
        plan.append(lambda: self._step(path, lambda: self._other(path, node)))

    def _step(self, path: RestorePath, call: Callable[[], None], *, is_dir: bool = False) -> None:
        self._cancel.check()
        if any(path[: len(d)] == d for d in self._failed_dirs):
            return  # inside a directory the target refused
        if not self._guarded(path, call) and is_dir:
            self._failed_dirs.add(path)

    def _replay(self) -> None:
        self._blobs = OrderedBlobs(self._repo, self._needs)
        try:
            for step in self._plan:
                step()
        finally:
            self._blobs.close()

    def _subtree(self, path: RestorePath, node: Node) -> Tree:
        if not node.subtree:
            return Tree()
        try:
            return self._repo.load_tree(node.subtree, cache=False)  # each read once
        except _UNREADABLE as e:
            if not self._partial:
                raise DamagedDataError(f"cannot read directory {show_path(path)}: {e}") from e
            self.warn(path, f"directory contents unreadable, restored empty: {e}")
            return Tree()

    def _node(self, path: RestorePath, node: Node, selected: bool) -> None:
        if node.type == NodeType.DIR:
            created = self._target.directory(path, node)
            self._walk(path, self._subtree(path, node), selected)
            if selected or created:
                if self._random:
                    self._dirs.append((path, _dir_metadata(node)))
                else:
                    self._target.finish_directory(path, node)
            self.dirs += 1
            return
        self._other(path, node)  # regular files go to ``_file`` straight from the walk

    def _file(self, path: RestorePath, node: Node) -> None:
        """Begin a regular file of a random-access restore; its content comes with its
        window's packs."""
        self._reporter.file_started(show_path(path), node.size)
        link = node.link
        if link is not None and self._hard_links and tuple(link) in self._done:
            self._links.append((path, node, tuple(link)))
            return
        content = node.content
        loc: BlobLocation | None = None
        if len(content) == 1:
            try:
                loc = self._repo.locate(content[0])
            except BlobNotFoundError:
                loc = None  # placed (or refused) by _layout
        if loc is not None:  # one blob, indexed: nearly every small file
            f = self._begin_one(path, node, [_Piece(content[0], 0, loc.raw_length, loc)])
        else:
            pieces, missing, why = self._layout(path, node)
            f = self._begin(path, node, pieces, missing, why)
        if f is None:
            return
        self._window_pieces += len(f.pieces)
        if len(self._files) >= _WINDOW_FILES or self._window_pieces >= _WINDOW_PIECES:
            self._fill_window()

    def _fill_window(self) -> None:
        """Write the content of every file begun since the last window, then forget
        their layouts."""
        self._fill_from_packs()
        for f in self._files:
            self._end(f)  # only files whose pieces never all arrived remain
        self._files = []
        self._window_pieces = 0
        self._deferred_failures(wait=False)

    def _deferred_failures(self, *, wait: bool) -> None:
        """Files the target accepted at ``end_file`` but failed to make later (the
        optional ``deferred_failures`` of a target that makes files in the background):
        not restored after all."""
        collect = getattr(self._target, "deferred_failures", None)
        if collect is None:
            return
        for path, error in collect(wait=wait):
            self.files -= 1
            source = self._done.get(path)
            if source is not None:
                source.failed = True  # no hard link to it
            self.refuse(path, f"not restored: {_reason(error, path)}")

    def _other(self, path: RestorePath, node: Node) -> None:
        self._reporter.file_started(show_path(path), node.size)
        if node.type == NodeType.SYMLINK:
            self._target.symlink(path, node)
        else:
            self._target.special(path, node)
        self.others += 1

    def _link_node(self, path: RestorePath, node: Node, existing: RestorePath) -> None:
        self._reporter.file_started(show_path(path), node.size)
        self._link(path, node, existing)

    # --- file layout and damage -----------------------------------------------------

    def _layout(self, path: RestorePath, node: Node) -> tuple[list[_Piece], int, str]:
        """Place every blob of the file; return the pieces, missing bytes and why.

        Blobs missing from every index have no known length. Blobs before the first
        missing one are placed from the start and blobs after the last one from the
        end (``node.size``); the span between is zero-filled."""
        locations: list[BlobLocation | None] = []
        problem: BlobNotFoundError | None = None
        for blob_id in node.content:
            try:
                locations.append(self._repo.locate(blob_id))
            except BlobNotFoundError as e:
                locations.append(None)
                problem = problem or e
        if problem is None:
            pieces, offset = [], 0
            for blob_id, loc in zip(node.content, locations, strict=True):
                assert loc is not None
                pieces.append(_Piece(blob_id, offset, loc.raw_length, loc))
                offset += loc.raw_length
            return pieces, 0, ""
        if not self._partial:
            raise DamagedDataError(f"cannot restore {show_path(path)}: {problem}") from problem
        first = locations.index(None)
        last = len(locations) - 1 - locations[::-1].index(None)
        head = [(b, loc) for b, loc in zip(node.content[:first], locations[:first], strict=True)]
        tail = [
            (b, loc) for b, loc in zip(node.content[last + 1 :], locations[last + 1 :], strict=True)
        ]
        head_size = sum(loc.raw_length for _, loc in head if loc is not None)
        tail_size = sum(loc.raw_length for _, loc in tail if loc is not None)
        gap = max(0, node.size - head_size - tail_size)
        pieces, offset = [], 0
        for blob_id, loc in head:
            assert loc is not None
            pieces.append(_Piece(blob_id, offset, loc.raw_length, loc))
            offset += loc.raw_length
        pieces.append(_Piece(node.content[first], offset, gap, None))
        offset += gap
        for blob_id, loc in tail:
            assert loc is not None
            pieces.append(_Piece(blob_id, offset, loc.raw_length, loc))
            offset += loc.raw_length
        return pieces, gap, str(problem)

    def _damage(self, f: _File, length: int, error: Exception) -> None:
        """Record unreadable data in ``f``; without allow_partial, end the restore."""
        if not self._partial:
            raise DamagedDataError(f"cannot restore {show_path(f.path)}: {error}") from error
        f.damaged += length
        f.damage = f.damage or str(error)

    def _report_damage(self, f: _File) -> None:
        if f.damaged and not f.failed:
            self.damaged.append(DamagedFile(show_path(f.path), f.damaged))
            self.warn(
                f.path,
                f"restored partially: {f.damaged} damaged bytes were zero-filled ({f.damage})",
            )

    # --- files ----------------------------------------------------------------------

    def _begin(
        self, path: RestorePath, node: Node, pieces: list[_Piece], missing: int, why: str
    ) -> _File | None:
        size = sum(p.length for p in pieces)
        handle = self._target.begin_file(path, node, size)
        if handle is None:
            self.kept += 1
            return None
        f = _File(path, handle, pieces, damaged=missing, damage=why)
        if node.nlink > 1:
            self._done[path] = f
        if self._random:
            self._files.append(f)
        return f

    def _begin_one(self, path: RestorePath, node: Node, pieces: list[_Piece]) -> _File | None:
        """``_begin`` of a random-access file of one located blob."""
        handle = self._target.begin_file(path, node, pieces[0].length)
        if handle is None:
            self.kept += 1
            return None
        f = _File(path, handle, pieces)
        if node.nlink > 1:
            self._done[path] = f
        self._files.append(f)
        return f

    def _file_planned(
        self, path: RestorePath, node: Node, pieces: list[_Piece], missing: int, why: str
    ) -> None:
        """A sequential target's file: begin, write every piece in order, end."""
        assert self._blobs is not None
        self._reporter.file_started(show_path(path), node.size)
        blobs = self._blobs
        read = 0  # pieces whose blob was asked for
        try:
            f = self._begin(path, node, pieces, missing, why)
            if f is None:
                return
            try:
                for piece in pieces:
                    self._cancel.check()
                    read += 1
                    data = self._read_piece(f, piece)
                    if data is None:
                        self._write_zeros(f, piece)
                    else:
                        self._write(f, piece.offset, data)
            except BaseException:
                self._target.abort_file(f.handle)
                raise
            self._end(f)
        finally:
            for piece in pieces[read:]:  # not asked for after all: do not keep them
                if piece.location is not None:
                    blobs.forget(piece.blob_id)

    def _read_piece(self, f: _File, piece: _Piece) -> bytes | None:
        """The piece's content, or None if it is to be zero-filled."""
        if piece.location is None:
            return None
        assert self._blobs is not None
        try:
            data = self._blobs.get(piece.blob_id)
        except _UNREADABLE as e:
            self._damage(f, piece.length, e)
            return None
        if len(data) != piece.length:
            self._damage(f, piece.length, self._length_error(piece, len(data)))
            return None
        return data

    @staticmethod
    def _length_error(piece: _Piece, actual: int) -> IntegrityError:
        return IntegrityError(
            f"blob {piece.blob_id.hex()} holds {actual} bytes, its index entry {piece.length}"
        )

    def _write(self, f: _File, offset: int, data: bytes) -> None:
        self._target.write(f.handle, offset, data)
        self.bytes += len(data)
        self._reporter.bytes_written(len(data))

    def _write_zeros(self, f: _File, piece: _Piece) -> None:
        for start, zeros in _zero_chunks(piece.length):
            self._cancel.check()
            self._write(f, piece.offset + start, zeros)

    def _end(self, f: _File) -> None:
        if f.failed or f.ended:
            return
        f.ended = True
        f.pieces = []  # written: its layout is no longer needed
        try:
            self._target.end_file(f.handle)
            self.files += 1
        except (OSError, TargetRefusedError) as e:
            self._fail(f, e)
            return
        self._report_damage(f)

    def _fail(self, f: _File, error: Exception) -> None:
        f.failed = True
        self._target.abort_file(f.handle)
        self.refuse(f.path, f"not restored: {_reason(error, f.path)}")

    def _link(self, path: RestorePath, node: Node, existing: RestorePath) -> None:
        source = self._done.get(existing)
        if source is None or source.failed:
            self.refuse(path, f"hard link target {show_path(existing)} was not restored")
            return
        try:
            self._target.hardlink(path, node, existing)
            self.files += 1
        except (OSError, TargetRefusedError) as e:
            self.refuse(path, f"hard link not restored: {_reason(e, path)}")

    # --- pack-order content (random-access targets) ---------------------------------

    def _fill_from_packs(self) -> None:
        """Write every file's content, reading each needed blob once, pack by pack in
        offset order. A file is finished as soon as its last piece is written, so most
        small files are opened once: created, written, given their metadata, renamed."""
        uses: dict[bytes, list[tuple[_File, _Piece]]] = {}
        by_pack: dict[bytes, list[tuple[bytes, BlobLocation]]] = {}
        for f in self._files:
            pieces = f.pieces
            f.remaining = len(pieces)
            if not pieces:
                self._end(f)
            for piece in pieces:
                loc = piece.location
                if loc is None:
                    self._put_zeros(f, piece)
                    continue
                used = uses.get(piece.blob_id)
                if used is None:
                    uses[piece.blob_id] = [(f, piece)]
                    blobs = by_pack.get(loc.pack_id)
                    if blobs is None:
                        by_pack[loc.pack_id] = [(piece.blob_id, loc)]
                    else:
                        blobs.append((piece.blob_id, loc))
                else:
                    used.append((f, piece))
        work: list[PackWork] = [(pack_id, by_pack[pack_id]) for pack_id in sorted(by_pack)]
        with PackPrefetcher(self._repo, work) as prefetcher:
            for item in prefetcher:
                self._cancel.check()
                if isinstance(item, Blobs):
                    written = 0
                    for blob_id, data in item.blobs:
                        written += self._deliver(uses.pop(blob_id), data)
                    if written:  # once a batch: a report per piece was a call per file
                        self._reporter.bytes_written(written)
                    continue
                if item.error is not None and not isinstance(item.error, _UNREADABLE):
                    raise item.error
                # A pack read failed part-way (or came up short): read its remaining
                # blobs one by one, so only the damaged ones are lost.
                left = sorted(b for b, _ in by_pack[item.pack_id] if b in uses)
                self._salvage(left, uses)

    def _salvage(
        self, blob_ids: list[bytes], uses: dict[bytes, list[tuple[_File, _Piece]]]
    ) -> None:
        for blob_id in blob_ids:
            self._cancel.check()
            used = uses.pop(blob_id)
            try:
                data = self._repo.read_blob(BlobType.DATA, blob_id)
            except _UNREADABLE as e:
                for f, piece in used:
                    if not f.failed:
                        self._damage(f, piece.length, e)
                        self._put_zeros(f, piece)
                continue
            written = self._deliver(used, data)
            if written:
                self._reporter.bytes_written(written)

    def _deliver(self, used: list[tuple[_File, _Piece]], data: bytes) -> int:
        """Write ``data`` at every place that uses it; return the bytes written (for the
        caller to report)."""
        written = 0
        write = self._target.write
        for f, piece in used:
            if f.failed:
                continue
            if len(data) != piece.length:
                self._damage(f, piece.length, self._length_error(piece, len(data)))
                self._put_zeros(f, piece)
                continue
            try:
                write(f.handle, piece.offset, data)
            except (OSError, TargetRefusedError) as e:
                self._fail(f, e)
                continue
            written += piece.length
            f.remaining -= 1
            if not f.remaining:
                self._end(f)
        self.bytes += written
        return written

    def _piece_done(self, f: _File) -> None:
        f.remaining -= 1
        if f.remaining == 0:
            self._end(f)

    def _put_zeros(self, f: _File, piece: _Piece) -> None:
        if f.failed:
            return
        try:
            self._write_zeros(f, piece)
        except (OSError, TargetRefusedError) as e:
            self._fail(f, e)
            return
        self._piece_done(f)


def run_restore(
    repo: Repository,
    snapshot_id: bytes | str,
    target: RestoreTarget,
    *,
    paths: Sequence[str] | None = None,
    reporter: RestoreReporter | None = None,
    cancel: CancelToken | None = None,
    hostname: str = "",
    allow_partial: bool = False,
) -> RestoreResult:
    """Restore a snapshot (or the ``paths`` inside it, given as absolute snapshot paths
    such as ``/home/u/docs``) into ``target``. Holds a shared lock.

    Per-node problems become warnings. Unreadable file data raises DamagedDataError
    naming the file, or with ``allow_partial`` is zero-filled and listed in
    ``RestoreResult.damaged`` and the warnings. Raises CancelledError,
    SnapshotNotFoundError, IntegrityError, other RepositoryError/StorageError
    subclasses, and the target's fatal errors (ArchiveWriteError, RestoreProgramError).
    On success the target's optional ``finish()`` completes its output."""
    reporter = reporter or NullRestoreReporter()
    cancel = cancel or CancelToken()
    selection = _parse_selection(paths)
    cancel.check()
    with repo.lock(hostname=hostname, purpose="restore", for_reading=True) as lock:
        if lock.warning:
            reporter.warning(JobWarning("", lock.warning))
        repo.refresh_index()
        snapshot = repo.load_snapshot(snapshot_id)
        _require_selection(repo, snapshot.tree, snapshot.id.hex(), selection)
        restorer = _Restorer(repo, target, reporter, cancel, selection, allow_partial)
        try:
            restorer.run(repo.load_tree(snapshot.tree))
            finish = getattr(target, "finish", None)
            if callable(finish):
                finish()
        finally:
            target.close()
    return RestoreResult(
        files=restorer.files,
        dirs=restorer.dirs,
        others=restorer.others,
        bytes_written=restorer.bytes,
        skipped=restorer.kept + restorer.refused,
        warnings=tuple(restorer.warnings),
        damaged=tuple(restorer.damaged),
        kept=restorer.kept,
        refused=restorer.refused,
    )
