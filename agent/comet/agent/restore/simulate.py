"""``SimulateTarget``: reassemble every file and verify it, writing nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from blake3 import blake3

from comet.agent.repository.tree import Node
from comet.agent.restore.target import RestorePath


@dataclass
class SimulatedFile:
    size: int
    digest: str


@dataclass
class SimulateTarget:
    """Records what a restore would produce: file sizes and BLAKE3 digests, and the
    other nodes' kinds. Receives content sequentially, like an archive target."""

    random_access: bool = False
    files: dict[str, SimulatedFile] = field(default_factory=dict)
    others: dict[str, str] = field(default_factory=dict)
    _open: dict[int, tuple[str, int, blake3]] = field(default_factory=dict)

    @staticmethod
    def _name(path: RestorePath) -> str:
        return "/" + "/".join(path)

    def directory(self, path: RestorePath, node: Node | None) -> bool:
        self.others[self._name(path)] = "dir"
        return True

    def finish_directory(self, path: RestorePath, node: Node) -> None:
        pass

    def begin_file(self, path: RestorePath, node: Node, size: int) -> int | None:
        handle = len(self.files) + len(self._open) + 1
        self._open[handle] = (self._name(path), 0, blake3())
        return handle

    def write(self, handle: int, offset: int, data: bytes) -> None:
        name, written, hasher = self._open[handle]
        if offset != written:
            raise AssertionError("sequential target got an out-of-order write")
        hasher.update(data)
        self._open[handle] = (name, written + len(data), hasher)

    def end_file(self, handle: int) -> None:
        name, written, hasher = self._open.pop(handle)
        self.files[name] = SimulatedFile(written, hasher.hexdigest())

    def abort_file(self, handle: int) -> None:
        self._open.pop(handle, None)

    def symlink(self, path: RestorePath, node: Node) -> None:
        self.others[self._name(path)] = "symlink"

    def hardlink(self, path: RestorePath, node: Node, existing: RestorePath) -> None:
        self.others[self._name(path)] = "hardlink"

    def special(self, path: RestorePath, node: Node) -> None:
        self.others[self._name(path)] = str(node.type)

    def close(self) -> None:
        self._open.clear()
