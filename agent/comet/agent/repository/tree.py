"""Directory trees: ``Node`` (one directory entry) and ``Tree`` (one directory), and
their deterministic serialization as tree blobs (docs/format.md, "Trees").

Decoding does not judge names: a restore validates them, so a hostile tree can be read
and reported on rather than rejected wholesale.
"""

from __future__ import annotations

import base64
import enum
import json
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
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == () or (value == "" and f.name != "name"):
                continue
            if f.name == "content":
                value = [b.hex() for b in value]
            elif f.name == "subtree":
                value = value.hex()
            elif f.name == "link":
                value = list(value)
            elif f.name == "xattrs":
                value = {k: base64.b64encode(v).decode() for k, v in value}
            elif f.name == "type":
                value = str(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Node:
        if not isinstance(obj, dict):
            raise ValueError("node is not an object")
        kw: dict[str, Any] = dict(obj)
        kw["type"] = NodeType(kw["type"])
        if not isinstance(kw["name"], str):
            raise ValueError("node name is not a string")
        if "content" in kw:
            kw["content"] = tuple(bytes.fromhex(h) for h in kw["content"])
        if "subtree" in kw:
            kw["subtree"] = bytes.fromhex(kw["subtree"])
        if "link" in kw:
            kw["link"] = tuple(str(p) for p in kw["link"])
        if "xattrs" in kw:
            kw["xattrs"] = tuple(
                sorted((str(k), base64.b64decode(v)) for k, v in kw["xattrs"].items())
            )
        return cls(**kw)


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
