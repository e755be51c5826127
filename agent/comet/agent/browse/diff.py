"""``diff_snapshots``: what changed between two snapshots.

Trees are compared by id first: a directory whose subtree id is the same in both
snapshots is identical below it and is never read, so comparing two snapshots of a
large, mostly unchanged tree reads only the directories on the paths that changed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from comet.agent.repository.repository import Repository
from comet.agent.repository.snapshot import Snapshot
from comet.agent.repository.tree import Node, NodeType, Tree
from comet.agent.restore.names import show_path, valid_name


class Change(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    MODIFIED = "modified"  # content (or type, or link target) differs
    METADATA = "metadata"  # same content; mode, owner, times or xattrs differ


@dataclass(frozen=True)
class DiffEntry:
    """One changed path. Sizes are file sizes (0 for anything else); a side that does
    not have the path has ``None`` for its type."""

    path: str
    change: Change
    old_type: NodeType | None
    new_type: NodeType | None
    old_size: int
    new_size: int


@dataclass
class DiffTotals:
    """Counts per kind of change, and the file bytes added and removed (a modified
    file counts its old size as removed and its new size as added)."""

    added: int = 0
    removed: int = 0
    modified: int = 0
    metadata: int = 0
    added_bytes: int = 0
    removed_bytes: int = 0
    trees_read: int = 0

    def count(self, entry: DiffEntry) -> None:
        setattr(self, entry.change.value, getattr(self, entry.change.value) + 1)
        if entry.change in (Change.ADDED, Change.MODIFIED):
            self.added_bytes += entry.new_size
        if entry.change in (Change.REMOVED, Change.MODIFIED):
            self.removed_bytes += entry.old_size


def _size(node: Node) -> int:
    return node.size if node.type == NodeType.FILE else 0


def _same_content(a: Node, b: Node) -> bool:
    if a.type != b.type:
        return False
    if a.type == NodeType.FILE:
        return a.size == b.size and a.content == b.content
    if a.type == NodeType.SYMLINK:
        return a.target == b.target
    if a.type in (NodeType.CHARDEV, NodeType.BLOCKDEV):
        return (a.rdev_major, a.rdev_minor) == (b.rdev_major, b.rdev_minor)
    return True


def _same_metadata(a: Node, b: Node) -> bool:
    # ctime, inode, device and link count change without anything a restore sets.
    return (a.mode, a.uid, a.gid, a.user, a.group, a.mtime_ns, a.xattrs) == (
        b.mode,
        b.uid,
        b.gid,
        b.user,
        b.group,
        b.mtime_ns,
        b.xattrs,
    )


class _Differ:
    def __init__(self, repo: Repository, totals: DiffTotals) -> None:
        self._repo = repo
        self._totals = totals

    def _tree(self, tree_id: bytes | None) -> Tree:
        if tree_id is None:
            return Tree()
        self._totals.trees_read += 1
        return self._repo.load_tree(tree_id)

    def _one_side(self, path: tuple[str, ...], node: Node, change: Change) -> Iterator[DiffEntry]:
        """``node`` and everything below it, all added or all removed."""
        added = change == Change.ADDED
        yield DiffEntry(
            show_path(path),
            change,
            None if added else node.type,
            node.type if added else None,
            0 if added else _size(node),
            _size(node) if added else 0,
        )
        if node.type == NodeType.DIR:
            for child in self._tree(node.subtree).nodes:
                if valid_name(child.name):
                    yield from self._one_side((*path, child.name), child, change)

    def trees(
        self, path: tuple[str, ...], old_id: bytes | None, new_id: bytes | None
    ) -> Iterator[DiffEntry]:
        if old_id == new_id:
            return  # identical below here: nothing is read
        old = {n.name: n for n in self._tree(old_id).nodes if valid_name(n.name)}
        new = {n.name: n for n in self._tree(new_id).nodes if valid_name(n.name)}
        for name in sorted(old.keys() | new.keys()):
            a, b = old.get(name), new.get(name)
            child = (*path, name)
            if a is None:
                assert b is not None
                yield from self._one_side(child, b, Change.ADDED)
            elif b is None:
                yield from self._one_side(child, a, Change.REMOVED)
            elif a.type != b.type:
                yield from self._one_side(child, a, Change.REMOVED)
                yield from self._one_side(child, b, Change.ADDED)
            else:
                if not _same_content(a, b):
                    change: Change | None = Change.MODIFIED
                elif not _same_metadata(a, b):
                    change = Change.METADATA
                else:
                    change = None
                if change is not None:
                    yield DiffEntry(show_path(child), change, a.type, b.type, _size(a), _size(b))
                if a.type == NodeType.DIR:
                    yield from self.trees(child, a.subtree, b.subtree)


def diff_snapshots(
    repo: Repository, old: Snapshot, new: Snapshot, totals: DiffTotals | None = None
) -> Iterator[DiffEntry]:
    """Yield every changed path from ``old`` to ``new`` in path order, counting them
    into ``totals`` as they go. Raises the RepositoryError of an unreadable tree."""
    totals = totals if totals is not None else DiffTotals()
    for entry in _Differ(repo, totals).trees((), old.tree, new.tree):
        totals.count(entry)
        yield entry
