"""``list_dir``: the entries of one directory of a snapshot; ``node_at``: the node at
a path."""

from __future__ import annotations

from comet.agent.browse.entry import Entry
from comet.agent.errors import BrowsePathError
from comet.agent.repository.repository import Repository
from comet.agent.repository.snapshot import Snapshot
from comet.agent.repository.tree import Node, NodeType, Tree
from comet.agent.restore.names import parse_path, show_path, valid_name


def snapshot_path(path: str) -> tuple[str, ...]:
    """``/home/u`` → its checked components; BrowsePathError for an unsafe one."""
    try:
        return parse_path(path)
    except ValueError as e:
        raise BrowsePathError(str(e)) from None


def node_at(repo: Repository, snapshot: Snapshot, parts: tuple[str, ...]) -> Node | None:
    """The node at ``parts`` (None for the snapshot root, which has no node), loading
    one tree per component. Raises BrowsePathError if the path is not in the snapshot."""
    tree = repo.load_tree(snapshot.tree)
    node: Node | None = None
    for depth, name in enumerate(parts):
        if node is not None:
            if node.type != NodeType.DIR:
                where = show_path(parts[:depth])
                raise BrowsePathError(f"{where} is a {node.type}, not a directory")
            tree = repo.load_tree(node.subtree) if node.subtree else Tree()
        node = next((n for n in tree.nodes if n.name == name), None)
        if node is None:
            raise BrowsePathError(f"{show_path(parts[: depth + 1])} is not in the snapshot")
    return node


def tree_at(repo: Repository, snapshot: Snapshot, parts: tuple[str, ...]) -> Tree:
    """The directory at ``parts``. Raises BrowsePathError if it is absent or is not a
    directory."""
    if not parts:
        return repo.load_tree(snapshot.tree)
    node = node_at(repo, snapshot, parts)
    assert node is not None
    if node.type != NodeType.DIR:
        raise BrowsePathError(f"{show_path(parts)} is a {node.type}, not a directory")
    return repo.load_tree(node.subtree) if node.subtree else Tree()


def subtree_at(repo: Repository, snapshot: Snapshot, parts: tuple[str, ...]) -> bytes | None:
    """The tree id of the directory at ``parts`` (None: an empty directory, which has
    no tree). Raises BrowsePathError as ``tree_at``."""
    if not parts:
        return snapshot.tree
    node = node_at(repo, snapshot, parts)
    assert node is not None
    if node.type != NodeType.DIR:
        raise BrowsePathError(f"{show_path(parts)} is a {node.type}, not a directory")
    return node.subtree or None


def list_dir(repo: Repository, snapshot_id: bytes | str, path: str) -> list[Entry]:
    """List the directory at ``path`` (``/`` for the snapshot root), sorted by name.

    Loads the snapshot's root tree and one tree per path component, nothing else.
    Entries with unsafe names (which a restore refuses) are left out. Raises
    BrowsePathError, SnapshotNotFoundError and other RepositoryError subclasses."""
    parts = snapshot_path(path)
    snapshot = repo.load_snapshot(snapshot_id)
    tree = tree_at(repo, snapshot, parts)
    return [
        Entry.from_node(snapshot.id, (*parts, node.name), node)
        for node in sorted(tree.nodes, key=lambda n: n.name)
        if valid_name(node.name)
    ]
