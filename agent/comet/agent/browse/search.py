"""``find``: search snapshots for entries by name, size and modification time.

The walk is depth-first over an explicit stack of tree iterators, so memory grows with
the depth of the tree, never with the size of the snapshot, and a search that reaches
its ``limit`` stops loading trees at once. It reads each node's parsed tree JSON as it
is and builds an ``Entry`` only for a match (``list_tree``: columns, no ``Entry``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from comet.agent.browse.entry import Entry, EntryColumns
from comet.agent.browse.listing import subtree_at
from comet.agent.errors import BrowseError, IntegrityError
from comet.agent.repository.format import BlobType
from comet.agent.repository.repository import Repository
from comet.agent.repository.snapshot import Snapshot
from comet.agent.repository.tree import NodeType, node_docs
from comet.agent.restore.names import show_path, valid_name


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
    """Whether a node (its parsed tree JSON, name and path) meets a query."""

    def __init__(self, query: FindQuery) -> None:
        self._q = query
        try:
            self._regex = re.compile(query.name_regex) if query.name_regex is not None else None
        except re.error as e:
            raise BrowseError(f"invalid name pattern {query.name_regex!r}: {e}") from None
        self._path = path_pattern(query.path_glob) if query.path_glob else None
        # fnmatchcase's own translation, compiled once rather than looked up per name.
        glob = query.name_glob
        self._glob = re.compile(fnmatch.translate(glob)).match if glob is not None else None
        self.everything = query == FindQuery(limit=query.limit)

    def __call__(self, doc: dict[str, Any], name: str, path: str) -> bool:
        q = self._q
        if self._path is not None and not self._path.fullmatch(path):
            return False
        if self._glob is not None and self._glob(name) is None:
            return False
        if self._regex is not None and not self._regex.search(name):
            return False
        if q.min_size is not None or q.max_size is not None:
            if doc["type"] != _FILE:
                return False
            size = doc.get("size", 0)
            if q.min_size is not None and size < q.min_size:
                return False
            if q.max_size is not None and size > q.max_size:
                return False
        mtime_ns = doc.get("mtime_ns", 0)
        if q.modified_after is not None and mtime_ns <= q.modified_after:
            return False
        return q.modified_before is None or mtime_ns < q.modified_before


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
    pattern, BrowsePathError, SnapshotNotFoundError and other RepositoryError
    subclasses."""
    matches = _Matcher(query)
    if query.limit is not None and query.limit <= 0:
        return
    found = 0
    for snapshot_id in snapshot_ids:
        snapshot = repo.load_snapshot(snapshot_id)
        hex_id = snapshot.id.hex()
        for path, name, doc in _walk(repo, snapshot, under):
            if matches.everything or matches(doc, name, path):
                yield _entry(hex_id, path, doc)
                found += 1
                if query.limit is not None and found >= query.limit:
                    return


def list_tree(
    repo: Repository, snapshot_id: bytes | str, *, under: tuple[str, ...] = (), batch: int
) -> Iterator[EntryColumns]:
    """Every entry below the directory ``under`` of a snapshot, as ``find`` with an
    empty query yields them, in columns of at most ``batch`` entries (never empty).
    A generator that reads trees as the walk reaches them; raises as ``find``."""
    snapshot = repo.load_snapshot(snapshot_id)
    hex_id = snapshot.id.hex()
    columns = EntryColumns(hex_id)
    for path, _name, doc in _walk(repo, snapshot, under):
        get = doc.get
        node_type = doc["type"]
        columns.paths.append(path)
        columns.types.append(_TYPES[node_type])
        columns.sizes.append(get("size", 0) if node_type == _FILE else 0)
        columns.modes.append(get("mode", 0))
        columns.mtimes_ns.append(get("mtime_ns", 0))
        columns.link_targets.append(get("target") if node_type == _SYMLINK else None)
        if len(columns.paths) >= batch:
            yield columns
            columns = EntryColumns(hex_id)
    if columns.paths:
        yield columns


def _entry(snapshot_id: str, path: str, doc: dict[str, Any]) -> Entry:
    """``Entry.from_node`` for a node's parsed tree JSON (read as Node.from_json does)."""
    node_type = doc["type"]
    return Entry(
        snapshot_id=snapshot_id,
        path=path,
        type=_TYPES[node_type],
        size=doc.get("size", 0) if node_type == _FILE else 0,
        mode=doc.get("mode", 0),
        mtime_ns=doc.get("mtime_ns", 0),
        link_target=doc.get("target") if node_type == _SYMLINK else None,
    )


def _walk(
    repo: Repository, snapshot: Snapshot, under: tuple[str, ...]
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(path, name, node JSON)`` of every node below the directory ``under``, depth
    first in name order, over an explicit stack of tree iterators. Each tree is read
    once and not cached (a walk never asks for it again). Unsafe names are skipped
    with everything below them."""
    start = subtree_at(repo, snapshot, under)
    if start is None:
        return
    stack = [(show_path(under).rstrip("/") + "/", iter(_node_docs(repo, start)))]
    while stack:
        base, nodes = stack[-1]
        for doc in nodes:
            name = doc["name"]
            if not valid_name(name):
                continue
            path = base + name
            yield path, name, doc
            if doc["type"] == _DIR and (subtree := doc.get("subtree")):
                stack.append((path + "/", iter(_node_docs(repo, subtree))))
                break
        else:
            stack.pop()


def _node_docs(repo: Repository, tree: bytes | str) -> list[dict[str, Any]]:
    """The nodes of a tree (its id, or the hex id a node's ``subtree`` holds)."""
    try:
        tree_id = tree if isinstance(tree, bytes) else bytes.fromhex(tree)
    except (ValueError, TypeError) as e:
        raise IntegrityError(f"a node names an invalid subtree {tree!r} ({e})") from e
    return node_docs(repo.read_blob(BlobType.TREE, tree_id), f"tree {tree_id.hex()}")


_FILE, _DIR, _SYMLINK = NodeType.FILE.value, NodeType.DIR.value, NodeType.SYMLINK.value
_TYPES = {t.value: t for t in NodeType}
