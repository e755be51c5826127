"""``find``: search snapshots for entries by name, size and modification time.

The walk is depth-first over an explicit stack of tree iterators, so memory grows with
the depth of the tree, never with the size of the snapshot, and a search that reaches
its ``limit`` stops loading trees at once.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from comet.agent.browse.entry import Entry
from comet.agent.browse.listing import tree_at
from comet.agent.errors import BrowseError
from comet.agent.repository.repository import Repository
from comet.agent.repository.tree import Node, NodeType
from comet.agent.restore.names import valid_name


@dataclass(frozen=True)
class FindQuery:
    """All given conditions must hold. Names match on the last path component:
    ``name_glob`` as a case-sensitive shell pattern, ``name_regex`` with ``re.search``.
    ``path_glob`` matches the whole path (``/home/u/a.txt``): ``*``, ``?`` and ``[…]``
    stay within one component, ``**`` spans any number of them, and a pattern that does
    not start with ``/`` may match the path's end (``docs/*.txt``).
    Size bounds (inclusive) match regular files only. Times are ns since the epoch,
    both bounds exclusive. ``limit`` caps the results across all snapshots."""

    name_glob: str | None = None
    name_regex: str | None = None
    path_glob: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    modified_after: int | None = None
    modified_before: int | None = None
    limit: int | None = None


class _Matcher:
    def __init__(self, query: FindQuery) -> None:
        self._q = query
        try:
            self._regex = re.compile(query.name_regex) if query.name_regex is not None else None
        except re.error as e:
            raise BrowseError(f"invalid name pattern {query.name_regex!r}: {e}") from None
        self._path = path_pattern(query.path_glob) if query.path_glob else None

    def __call__(self, node: Node, path: tuple[str, ...]) -> bool:
        q = self._q
        if self._path is not None and not self._path.fullmatch("/" + "/".join(path)):
            return False
        if q.name_glob is not None and not fnmatch.fnmatchcase(node.name, q.name_glob):
            return False
        if self._regex is not None and not self._regex.search(node.name):
            return False
        if q.min_size is not None or q.max_size is not None:
            if node.type != NodeType.FILE:
                return False
            if q.min_size is not None and node.size < q.min_size:
                return False
            if q.max_size is not None and node.size > q.max_size:
                return False
        if q.modified_after is not None and node.mtime_ns <= q.modified_after:
            return False
        return q.modified_before is None or node.mtime_ns < q.modified_before


def path_pattern(glob: str) -> re.Pattern[str]:
    """A full-path glob as a regex (see ``FindQuery.path_glob``)."""
    text = glob.lstrip("/")
    out = ["/"] if glob.startswith("/") else ["(?:/.*)?/"]  # relative: matches an ending
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
            continue
        if text.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = text.find("]", i + 2 if text[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = text[i + 1 : end]
                body = "^" + body[1:] if body.startswith("!") else body
                out.append("(?!/)[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return re.compile("".join(out).rstrip("/") or "/")
    except re.error as e:
        raise BrowseError(f"invalid path pattern {glob!r}: {e}") from None


def find(
    repo: Repository,
    snapshot_ids: Iterable[bytes | str],
    query: FindQuery,
    *,
    under: tuple[str, ...] = (),
) -> Iterator[Entry]:
    """Yield matching entries of each snapshot in turn, in depth-first name order,
    only below the directory ``under`` (path components) when it is given.

    A generator: trees are loaded only as the walk reaches them. Entries with unsafe
    names are skipped along with anything below them. Raises BrowseError for a bad
    pattern, SnapshotNotFoundError and other RepositoryError subclasses."""
    matches = _Matcher(query)
    if query.limit is not None and query.limit <= 0:
        return
    found = 0
    for snapshot_id in snapshot_ids:
        snapshot = repo.load_snapshot(snapshot_id)
        stack: list[tuple[tuple[str, ...], Iterator[Node]]] = [
            (under, iter(tree_at(repo, snapshot, under).nodes))
        ]
        while stack:
            path, nodes = stack[-1]
            node = next(nodes, None)
            if node is None:
                stack.pop()
                continue
            if not valid_name(node.name):
                continue
            child = (*path, node.name)
            if matches(node, child):
                yield Entry.from_node(snapshot.id, child, node)
                found += 1
                if query.limit is not None and found >= query.limit:
                    return
            if node.type == NodeType.DIR and node.subtree:
                subtree = repo.load_tree(node.subtree, cache=False)  # each read once
                stack.append((child, iter(subtree.nodes)))
