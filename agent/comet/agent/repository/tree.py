"""Directory trees: ``Node`` (one directory entry) and ``Tree`` (one directory), and
their deterministic serialization as tree blobs (docs/format.md, "Trees").

Decoding does not judge names: a restore validates them, so a hostile tree can be read
and reported on rather than rejected wholesale.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from comet.agent.errors import IntegrityError, UnsupportedFormatError

TREE_VERSION = 1


class NodeType(enum.StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    FIFO = "fifo"
    CHARDEV = "chardev"
    BLOCKDEV = "blockdev"
    SOCKET = "socket"


@dataclass(frozen=True, slots=True)
class Node:
    """One entry of a directory. Names are ``str``; undecodable bytes are kept as
    surrogate escapes (``os.fsdecode``)."""

    name: str
    type: NodeType
    mode: int = 0
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    mtime_ns: int = 0
    ctime_ns: int = 0
    inode: int = 0
    dev: int = 0
    nlink: int = 1
    size: int = 0
    content: tuple[bytes, ...] = ()
    subtree: bytes | None = None
    target: str | None = None
    link: tuple[str, ...] | None = None
    xattrs: tuple[tuple[str, bytes], ...] = ()
    rdev_major: int = 0
    rdev_minor: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type.value}
        for name in _SCALARS:
            value = getattr(self, name)
            if value != "" and value is not None:
                out[name] = value
        if self.content:
            out["content"] = [b.hex() for b in self.content]
        if self.subtree is not None:
            out["subtree"] = self.subtree.hex()
        if self.target:
            out["target"] = self.target
        if self.link:
            out["link"] = list(self.link)
        if self.xattrs:
            out["xattrs"] = {k: base64.b64encode(v).decode() for k, v in self.xattrs}
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Node:
        if not isinstance(obj, dict):
            raise ValueError("node is not an object")
        if not obj.keys() <= _FIELD_NAMES:
            raise ValueError(f"unknown node fields {sorted(obj.keys() - _FIELD_NAMES)}")
        # Every field is set through its slot on a bare instance: the frozen
        # dataclass __init__ (twenty object.__setattr__ calls) was most of the cost of
        # decoding a tree, which listing, searching and restoring many small files pay
        # once per file.
        values = _DEFAULTS | obj
        if not isinstance(values["name"], str):
            raise ValueError("node name is not a string")
        values["type"] = _TYPES[values["type"]]
        content = values["content"]
        values["content"] = tuple(map(bytes.fromhex, content)) if content else ()
        subtree = values["subtree"]
        if subtree is not None:
            values["subtree"] = bytes.fromhex(subtree)
        link = values["link"]
        if link is not None:
            values["link"] = tuple(str(p) for p in link)
        xattrs = values["xattrs"]
        values["xattrs"] = (
            tuple(sorted((str(k), base64.b64decode(v)) for k, v in xattrs.items()))
            if xattrs
            else ()
        )
        node: Node = object.__new__(cls)
        for set_slot, value in zip(_SLOT_SETTERS, map(values.__getitem__, _ORDER), strict=True):
            set_slot(node, value)
        return node


# Fields written as they are unless empty: tree version 1 leaves out None, empty
# tuples and empty strings (never zeros), and tree ids depend on those exact bytes.
_SCALARS = (
    "mode",
    "uid",
    "gid",
    "user",
    "group",
    "mtime_ns",
    "ctime_ns",
    "inode",
    "dev",
    "nlink",
    "size",
    "rdev_major",
    "rdev_minor",
)
_FIELD_NAMES = frozenset(f.name for f in fields(Node))
_ORDER = tuple(f.name for f in fields(Node))
# The defaults of the fields a node may leave out (every one but name and type).
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Node)[2:]}
_SLOT_SETTERS: tuple[Callable[[Node, Any], None], ...] = tuple(
    getattr(Node, name).__set__ for name in _ORDER
)
_TYPES = {t.value: t for t in NodeType}


@dataclass(frozen=True, slots=True)
class Tree:
    """The entries of one directory, sorted by name."""

    nodes: tuple[Node, ...] = field(default=())

    def encode(self) -> bytes:
        nodes = sorted(self.nodes, key=lambda n: n.name)
        doc = {"v": TREE_VERSION, "nodes": [n.to_json() for n in nodes]}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")

    @classmethod
    def decode(cls, data: bytes, what: str) -> Tree:
        try:
            doc = json.loads(data)
            version = doc["v"]
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"{what} is not a valid tree ({e})") from e
        if version != TREE_VERSION:
            raise UnsupportedFormatError(f"{what} has unknown tree version {version}")
        try:
            return cls(tuple(Node.from_json(n) for n in doc["nodes"]))
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"{what} has a malformed node ({e})") from e
