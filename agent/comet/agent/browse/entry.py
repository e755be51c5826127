"""``Entry``: one snapshot node as browse and search results show it."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(slots=True)
class EntryColumns:
    """Many entries of one snapshot (hex id) as parallel lists, entry ``i`` being
    ``paths[i]``, ``types[i]``…: what a recursive listing streams, built and converted
    a list at a time rather than one ``Entry`` per file. Field meanings as in ``Entry``
    (``link_targets[i]`` is None for anything but a symlink)."""

    snapshot_id: str
    paths: list[str] = field(default_factory=list)
    types: list[NodeType] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    modes: list[int] = field(default_factory=list)
    mtimes_ns: list[int] = field(default_factory=list)
    link_targets: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def entries(self) -> list[Entry]:
        """The same entries, one ``Entry`` each."""
        return [
            Entry(self.snapshot_id, *row)
            for row in zip(
                self.paths,
                self.types,
                self.sizes,
                self.modes,
                self.mtimes_ns,
                self.link_targets,
                strict=True,
            )
        ]
