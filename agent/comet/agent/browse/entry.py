"""``Entry``: one snapshot node as browse and search results show it."""

from __future__ import annotations

from dataclasses import dataclass

from comet.agent.repository.tree import Node, NodeType
from comet.agent.restore.names import show_path


@dataclass(frozen=True, slots=True)
class Entry:
    """A node at ``path`` (absolute snapshot path, ``/home/u/file``) of a snapshot
    (hex id). ``size`` is 0 for anything but files."""

    snapshot_id: str
    path: str
    type: NodeType
    size: int
    mode: int
    mtime_ns: int
    link_target: str | None = None

    @classmethod
    def from_node(cls, snapshot_id: bytes, path: tuple[str, ...], node: Node) -> Entry:
        return cls(
            snapshot_id=snapshot_id.hex(),
            path=show_path(path),
            type=node.type,
            size=node.size if node.type == NodeType.FILE else 0,
            mode=node.mode,
            mtime_ns=node.mtime_ns,
            link_target=node.target if node.type == NodeType.SYMLINK else None,
        )
