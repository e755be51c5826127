"""Directory trees: ``Node`` (one directory entry) and ``Tree`` (one directory), and
their deterministic serialization as tree blobs (docs/format.md, "Trees").

Decoding does not judge names: a restore validates them, so a hostile tree can be read
and reported on rather than rejected wholesale.
"""

from __future__ import annotations

import base64
import enum
import operator
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from itertools import chain
from operator import itemgetter
from typing import Any

from comet.agent.errors import IntegrityError, UnsupportedFormatError
from comet.agent.repository import json_doc

TREE_VERSION = 1


class NodeType(enum.StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    FIFO = "fifo"
    CHARDEV = "chardev"
    BLOCKDEV = "blockdev"
    SOCKET = "socket"


@dataclass(frozen=True, slots=True, init=False)
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

    def __init__(
        self,
        name: str,
        type: NodeType,
        mode: int = 0,
        uid: int = 0,
        gid: int = 0,
        user: str = "",
        group: str = "",
        mtime_ns: int = 0,
        ctime_ns: int = 0,
        inode: int = 0,
        dev: int = 0,
        nlink: int = 1,
        size: int = 0,
        content: tuple[bytes, ...] = (),
        subtree: bytes | None = None,
        target: str | None = None,
        link: tuple[str, ...] | None = None,
        xattrs: tuple[tuple[str, bytes], ...] = (),
        rdev_major: int = 0,
        rdev_minor: int = 0,
    ) -> None:
        # The fields' own signature and defaults, set through the slots: the frozen
        # dataclass __init__ (twenty object.__setattr__ calls by name) cost about as
        # much as a file's lstat in a first backup of many small files.
        _set_name(self, name)
        _set_type(self, type)
        _set_mode(self, mode)
        _set_uid(self, uid)
        _set_gid(self, gid)
        _set_user(self, user)
        _set_group(self, group)
        _set_mtime_ns(self, mtime_ns)
        _set_ctime_ns(self, ctime_ns)
        _set_inode(self, inode)
        _set_dev(self, dev)
        _set_nlink(self, nlink)
        _set_size(self, size)
        _set_content(self, content)
        _set_subtree(self, subtree)
        _set_target(self, target)
        _set_link(self, link)
        _set_xattrs(self, xattrs)
        _set_rdev_major(self, rdev_major)
        _set_rdev_minor(self, rdev_minor)

    def to_json(self) -> dict[str, Any]:
        # Straight-line code for the rule of ``_SCALARS`` (a loop of getattr by name
        # was half of encoding a tree). ``_value_`` is the member's plain attribute; the
        # ``value`` property goes through the enum machinery.
        out: dict[str, Any] = {"name": self.name, "type": self.type._value_}
        v: Any = self.mode
        if v is not None and v != "":
            out["mode"] = v
        v = self.uid
        if v is not None and v != "":
            out["uid"] = v
        v = self.gid
        if v is not None and v != "":
            out["gid"] = v
        v = self.user
        if v is not None and v != "":
            out["user"] = v
        v = self.group
        if v is not None and v != "":
            out["group"] = v
        v = self.mtime_ns
        if v is not None and v != "":
            out["mtime_ns"] = v
        v = self.ctime_ns
        if v is not None and v != "":
            out["ctime_ns"] = v
        v = self.inode
        if v is not None and v != "":
            out["inode"] = v
        v = self.dev
        if v is not None and v != "":
            out["dev"] = v
        v = self.nlink
        if v is not None and v != "":
            out["nlink"] = v
        v = self.size
        if v is not None and v != "":
            out["size"] = v
        v = self.rdev_major
        if v is not None and v != "":
            out["rdev_major"] = v
        v = self.rdev_minor
        if v is not None and v != "":
            out["rdev_minor"] = v
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
        name = obj["name"]
        if not isinstance(name, str):
            raise ValueError("node name is not a string")
        get = obj.get
        content = get("content")
        subtree = get("subtree")
        link = get("link")
        xattrs = get("xattrs")
        # Every field is set through its slot on a bare instance, in straight-line
        # code: the frozen dataclass __init__ (twenty object.__setattr__ calls) was most
        # of the cost of decoding a tree, which listing, searching, restoring and
        # re-backing-up many small files pay once per file. Defaults as in the class.
        node: Node = object.__new__(cls)
        _set_name(node, name)
        _set_type(node, _TYPES[obj["type"]])
        _set_mode(node, get("mode", 0))
        _set_uid(node, get("uid", 0))
        _set_gid(node, get("gid", 0))
        _set_user(node, get("user", ""))
        _set_group(node, get("group", ""))
        _set_mtime_ns(node, get("mtime_ns", 0))
        _set_ctime_ns(node, get("ctime_ns", 0))
        _set_inode(node, get("inode", 0))
        _set_dev(node, get("dev", 0))
        _set_nlink(node, get("nlink", 1))
        _set_size(node, get("size", 0))
        _set_content(node, tuple(map(bytes.fromhex, content)) if content else ())
        _set_subtree(node, None if subtree is None else bytes.fromhex(subtree))
        _set_target(node, get("target"))
        _set_link(node, None if link is None else tuple(str(p) for p in link))
        _set_xattrs(
            node,
            ()
            if not xattrs
            else tuple(sorted((str(k), base64.b64decode(v)) for k, v in xattrs.items())),
        )
        _set_rdev_major(node, get("rdev_major", 0))
        _set_rdev_minor(node, get("rdev_minor", 0))
        return node


# Fields written as they are unless empty: tree version 1 leaves out None, empty
# tuples and empty strings (never zeros), and tree ids depend on those exact bytes.
# ``Node.to_json`` spells this list out; a test holds the two equal.
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


def _setter(name: str) -> Callable[[Node, Any], None]:
    """The slot's own setter, which the frozen class's __setattr__ does not refuse."""
    setter: Callable[[Node, Any], None] = getattr(Node, name).__set__
    return setter


_set_name = _setter("name")
_set_type = _setter("type")
_set_mode = _setter("mode")
_set_uid = _setter("uid")
_set_gid = _setter("gid")
_set_user = _setter("user")
_set_group = _setter("group")
_set_mtime_ns = _setter("mtime_ns")
_set_ctime_ns = _setter("ctime_ns")
_set_inode = _setter("inode")
_set_dev = _setter("dev")
_set_nlink = _setter("nlink")
_set_size = _setter("size")
_set_content = _setter("content")
_set_subtree = _setter("subtree")
_set_target = _setter("target")
_set_link = _setter("link")
_set_xattrs = _setter("xattrs")
_set_rdev_major = _setter("rdev_major")
_set_rdev_minor = _setter("rdev_minor")
_TYPES = {t.value: t for t in NodeType}
_by_name = operator.attrgetter("name")


@dataclass(frozen=True, slots=True)
class Tree:
    """The entries of one directory, sorted by name."""

    nodes: tuple[Node, ...] = field(default=())

    def encode(self) -> bytes:
        nodes = sorted(self.nodes, key=_by_name)
        doc = {"v": TREE_VERSION, "nodes": [n.to_json() for n in nodes]}
        return json_doc.canonical(doc)

    @classmethod
    def decode(cls, data: bytes, what: str) -> Tree:
        doc = parse_tree_document(data, what)
        try:
            return cls(tuple(Node.from_json(n) for n in doc["nodes"]))
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"{what} has a malformed node ({e})") from e


def node_docs(data: bytes, what: str) -> list[dict[str, Any]]:
    """A tree blob's nodes as their parsed JSON objects, in stored (name) order, for a
    walk that reads a few fields of every node (a listing, a search) and builds no
    ``Node``: building them was most of the cost of ``ls -R`` on many small files.

    Checks what ``Tree.decode`` checks of each node's keys, name and type (the errors
    are the same); the other fields are left as parsed, to be read as ``Node.from_json``
    reads them (``get(field, default)``)."""
    doc = parse_tree_document(data, what)
    try:
        nodes = doc["nodes"]
        if not isinstance(nodes, list) or not _well_formed(nodes):
            for obj in nodes:  # the first bad node, named in decode's words
                Node.from_json(obj)
    except (ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"{what} has a malformed node ({e})") from e
    return nodes if isinstance(nodes, list) else list(nodes)  # as decode iterates them


def _well_formed(nodes: list[Any]) -> bool:
    """Whether every node is an object of known fields with a string name and a known
    type: the checks of ``Node.from_json`` that a listing relies on, as a few C-speed
    passes over the list (a loop of them per node was a fifth of a search)."""
    try:
        return (
            set(map(type, nodes)) <= _DICT
            and _FIELD_NAMES.issuperset(chain.from_iterable(nodes))
            and set(map(type, map(_NAME, nodes))) <= _STR
            and set(map(_TYPE, nodes)) <= _TYPES.keys()
        )
    except (KeyError, TypeError):  # a missing name or type; a type that is not hashable
        return False


_DICT, _STR = {dict}, {str}
_NAME, _TYPE = itemgetter("name"), itemgetter("type")


def parse_tree_document(data: bytes, what: str) -> Any:
    """A tree blob's parsed document, its version checked (IntegrityError,
    UnsupportedFormatError); its nodes are left as parsed."""
    try:
        doc = json_doc.parse(data)
        version = doc["v"]
    except (ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"{what} is not a valid tree ({e})") from e
    if version != TREE_VERSION:
        raise UnsupportedFormatError(f"{what} has unknown tree version {version}")
    return doc
