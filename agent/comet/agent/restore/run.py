"""``run_restore``: walk a snapshot's trees and hand its nodes to a RestoreTarget.

For random-access targets every file is begun first, then each needed blob is read
once, pack by pack in offset order, and written to every place that uses it; files are
then finished, hard links made and directory metadata applied deepest-first.
Names are validated here, so no target ever sees ``..``, ``/``, NUL or empty names.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from comet.agent.cancel import CancelToken
from comet.agent.errors import RestoreError
from comet.agent.reporter import JobWarning, NullRestoreReporter, RestoreReporter
from comet.agent.repository.format import BlobType
from comet.agent.repository.index import BlobLocation
from comet.agent.repository.repository import Repository
from comet.agent.repository.tree import Node, NodeType, Tree
from comet.agent.restore.target import RestorePath, RestoreTarget, TargetRefusedError

_SEQUENTIAL_CACHE = 8


@dataclass(frozen=True)
class RestoreResult:
    files: int
    dirs: int
    others: int
    bytes_written: int
    skipped: int
    warnings: tuple[JobWarning, ...]


@dataclass
class _File:
    path: RestorePath
    handle: int
    blobs: list[tuple[bytes, int]] = field(default_factory=list)  # (blob id, offset)
    failed: bool = False


def _valid_name(name: str) -> bool:
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name


def _show(path: Sequence[str]) -> str:
    return "/" + "/".join(path)


def _parse_selection(paths: Sequence[str] | None) -> list[RestorePath] | None:
    if paths is None:
        return None
    out = []
    for p in paths:
        parts = tuple(c for c in p.split("/") if c)
        if any(not _valid_name(c) for c in parts):
            raise RestoreError(f"invalid path to restore: {p!r}")
        out.append(parts)
    return out


class _Restorer:
    def __init__(
        self,
        repo: Repository,
        target: RestoreTarget,
        reporter: RestoreReporter,
        cancel: CancelToken,
        selection: list[RestorePath] | None,
    ) -> None:
        self._repo = repo
        self._target = target
        self._reporter = reporter
        self._cancel = cancel
        self._selection = selection
        self._random = target.random_access
        self._files: list[_File] = []
        self._done: dict[RestorePath, _File] = {}
        self._links: list[tuple[RestorePath, Node, RestorePath]] = []
        self._dirs: list[tuple[RestorePath, Node]] = []
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self.warnings: list[JobWarning] = []
        self.files = self.dirs = self.others = self.bytes = self.skipped = 0

    def warn(self, path: Sequence[str], message: str) -> None:
        warning = JobWarning(_show(path), message)
        self.warnings.append(warning)
        self._reporter.warning(warning)

    def _selected(self, path: RestorePath) -> bool:
        return self._selection is None or any(path[: len(s)] == s for s in self._selection)

    def _ancestor(self, path: RestorePath) -> bool:
        assert self._selection is not None
        return any(len(s) > len(path) and s[: len(path)] == path for s in self._selection)

    def run(self, root: Tree) -> None:
        self._target.directory((), None)
        self._walk((), root, self._selection is None)
        if self._random:
            self._fill_from_packs()
            for f in self._files:
                self._end(f)
        for path, node, existing in self._links:
            self._link(path, node, existing)
        for path, node in reversed(self._dirs):
            try:
                self._target.finish_directory(path, node)
            except (OSError, TargetRefusedError) as e:
                self.warn(path, f"cannot set directory metadata: {e}")

    # --- walking --------------------------------------------------------------------

    def _walk(self, path: RestorePath, tree: Tree, selected: bool) -> None:
        seen: set[str] = set()
        for node in tree.nodes:
            self._cancel.check()
            if not _valid_name(node.name):
                self.warn(path, f"refused an entry with an unsafe name {node.name!r}")
                continue
            if node.name in seen:
                self.warn((*path, node.name), "refused a duplicate entry of the same name")
                continue
            seen.add(node.name)
            child = (*path, node.name)
            sel = selected or self._selected(child)
            if not sel and (node.type != NodeType.DIR or not self._ancestor(child)):
                continue
            try:
                self._node(child, node, sel)
            except (OSError, TargetRefusedError) as e:
                self.warn(child, f"not restored: {e}")

    def _node(self, path: RestorePath, node: Node, selected: bool) -> None:
        if node.type == NodeType.DIR:
            created = self._target.directory(path, node)
            subtree = self._repo.load_tree(node.subtree) if node.subtree else Tree()
            self._walk(path, subtree, selected)
            if selected or created:
                if self._random:
                    self._dirs.append((path, node))
                else:
                    self._target.finish_directory(path, node)
            self.dirs += 1
            return
        self._reporter.file_started(_show(path), node.size)
        if node.type == NodeType.FILE:
            if node.link is not None and tuple(node.link) in self._done:
                if self._random:
                    self._links.append((path, node, tuple(node.link)))
                else:
                    self._link(path, node, tuple(node.link))
                return
            self._file(path, node)
        elif node.type == NodeType.SYMLINK:
            self._target.symlink(path, node)
            self.others += 1
        else:
            self._target.special(path, node)
            self.others += 1

    def _file(self, path: RestorePath, node: Node) -> None:
        locations: list[BlobLocation] = [self._repo.locate(b) for b in node.content]
        size = sum(loc.raw_length for loc in locations)
        handle = self._target.begin_file(path, node, size)
        if handle is None:
            self.skipped += 1
            return
        f = _File(path, handle)
        offset = 0
        for blob_id, loc in zip(node.content, locations, strict=True):
            f.blobs.append((blob_id, offset))
            offset += loc.raw_length
        self._done[path] = f
        if self._random:
            self._files.append(f)
            return
        try:
            for blob_id, offset in f.blobs:
                self._cancel.check()
                self._write(f, offset, self._read_cached(blob_id))
        except BaseException:
            self._target.abort_file(handle)
            raise
        self._end(f)

    def _read_cached(self, blob_id: bytes) -> bytes:
        data = self._cache.get(blob_id)
        if data is None:
            data = self._repo.read_blob(BlobType.DATA, blob_id)
            self._cache[blob_id] = data
            if len(self._cache) > _SEQUENTIAL_CACHE:
                self._cache.popitem(last=False)
        return data

    def _write(self, f: _File, offset: int, data: bytes) -> None:
        self._target.write(f.handle, offset, data)
        self.bytes += len(data)
        self._reporter.bytes_written(len(data))

    def _end(self, f: _File) -> None:
        if f.failed:
            return
        try:
            self._target.end_file(f.handle)
            self.files += 1
        except (OSError, TargetRefusedError) as e:
            f.failed = True
            self._target.abort_file(f.handle)
            self.warn(f.path, f"not restored: {e}")

    def _link(self, path: RestorePath, node: Node, existing: RestorePath) -> None:
        source = self._done.get(existing)
        if source is None or source.failed:
            self.warn(path, f"hard link target {_show(existing)} was not restored")
            return
        try:
            self._target.hardlink(path, node, existing)
            self.files += 1
        except (OSError, TargetRefusedError) as e:
            self.warn(path, f"hard link not restored: {e}")

    # --- pack-order content ---------------------------------------------------------

    def _fill_from_packs(self) -> None:
        uses: dict[bytes, list[tuple[_File, int]]] = defaultdict(list)
        for f in self._files:
            for blob_id, offset in f.blobs:
                uses[blob_id].append((f, offset))
        by_pack: dict[bytes, list[tuple[bytes, BlobLocation]]] = defaultdict(list)
        for blob_id in uses:
            loc = self._repo.locate(blob_id)
            by_pack[loc.pack_id].append((blob_id, loc))
        for pack_id in sorted(by_pack):
            self._cancel.check()
            for blob_id, data in self._repo.read_pack_blobs(pack_id, by_pack[pack_id]):
                for f, offset in uses.pop(blob_id):
                    if f.failed:
                        continue
                    try:
                        self._write(f, offset, data)
                    except (OSError, TargetRefusedError) as e:
                        f.failed = True
                        self._target.abort_file(f.handle)
                        self.warn(f.path, f"not restored: {e}")


def run_restore(
    repo: Repository,
    snapshot_id: bytes | str,
    target: RestoreTarget,
    *,
    paths: Sequence[str] | None = None,
    reporter: RestoreReporter | None = None,
    cancel: CancelToken | None = None,
    hostname: str = "",
) -> RestoreResult:
    """Restore a snapshot (or the ``paths`` inside it, given as absolute snapshot paths
    such as ``/home/u/docs``) into ``target``. Holds a shared lock.

    Per-node problems become warnings. Raises CancelledError, SnapshotNotFoundError,
    IntegrityError and other RepositoryError/StorageError subclasses."""
    reporter = reporter or NullRestoreReporter()
    cancel = cancel or CancelToken()
    selection = _parse_selection(paths)
    cancel.check()
    with repo.lock(hostname=hostname):
        repo.refresh_index()
        snapshot = repo.load_snapshot(snapshot_id)
        restorer = _Restorer(repo, target, reporter, cancel, selection)
        try:
            restorer.run(repo.load_tree(snapshot.tree))
        finally:
            target.close()
    return RestoreResult(
        files=restorer.files,
        dirs=restorer.dirs,
        others=restorer.others,
        bytes_written=restorer.bytes,
        skipped=restorer.skipped,
        warnings=tuple(restorer.warnings),
    )
