"""``list_dir``: the entries of one directory of a snapshot."""

from __future__ import annotations

from comet.agent.browse.entry import Entry
from comet.agent.errors import BrowsePathError
from comet.agent.repository.repository import Repository
from comet.agent.repository.tree import NodeType, Tree
from comet.agent.restore.names import parse_path, show_path, valid_name


def list_dir(repo: Repository, snapshot_id: bytes | str, path: str) -> list[Entry]:
    """List the directory at ``path`` (``/`` for the snapshot root), sorted by name.

    Loads the snapshot's root tree and one tree per path component, nothing else.
    Entries with unsafe names (which a restore refuses) are left out. Raises
    BrowsePathError, SnapshotNotFoundError and other RepositoryError subclasses."""
    try:
        parts = parse_path(path)
    except ValueError as e:
        raise BrowsePathError(str(e)) from None
    snapshot = repo.load_snapshot(snapshot_id)
    tree = repo.load_tree(snapshot.tree)
    for depth, name in enumerate(parts):
        node = next((n for n in tree.nodes if n.name == name), None)
        where = show_path(parts[: depth + 1])
        if node is None:
            raise BrowsePathError(f"{where} is not in the snapshot")
        if node.type != NodeType.DIR:
            raise BrowsePathError(f"{where} is a {node.type}, not a directory")
        tree = repo.load_tree(node.subtree) if node.subtree else Tree()
    return [
        Entry.from_node(snapshot.id, (*parts, node.name), node)
        for node in sorted(tree.nodes, key=lambda n: n.name)
        if valid_name(node.name)
    ]
