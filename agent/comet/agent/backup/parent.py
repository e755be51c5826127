"""The previous snapshot's version of a directory, as a backup's walk compares with it.

Its entries are kept as the parsed JSON objects of the tree blob (``node_docs``), not
as ``Node``s: an unchanged re-run compares every file's stat with its previous entry,
and building a ``Node`` for each was over a quarter of that walk. A ``Node`` is built only
for an entry that changed, or for every entry of a directory that must be encoded
again; ``Node.from_json`` of a parsed entry encodes to the bytes it was read from,
so an unchanged entry in a changed directory is written as before.

The checks ``Tree.decode`` makes of every node are made of the entries the walk reuses,
when it reuses them (``node_docs`` for names and types, ``content_ids``/``subtree_id``
for ids, ``Node.from_json`` for any entry that is not ``plain``): a damaged entry is
reported and its file saved as new, never reused as it is.
"""

from __future__ import annotations

import os
from operator import itemgetter
from typing import Any

from comet.agent.repository.format import BlobType
from comet.agent.repository.repository import Repository
from comet.agent.repository.tree import Node, NodeType, node_docs

# An entry of the previous snapshot's directory: its node as parsed JSON. The fields
# are read as ``Node.from_json`` reads them, ``get(field, default)``.
EntryDoc = dict[str, Any]

_FILE = NodeType.FILE._value_
_DIR = NodeType.DIR._value_
_NAME = itemgetter("name")


class ParentDir:
    """The previous snapshot's version of a directory: its tree id and entries by name."""

    __slots__ = ("count", "docs", "tree_id")

    def __init__(self, tree_id: bytes, docs: list[EntryDoc]) -> None:
        self.tree_id = tree_id
        self.docs = dict(zip(map(_NAME, docs), docs, strict=True))  # C loops, no frame
        self.count = len(docs)

    @property
    def what(self) -> str:
        """The tree named as a damaged tree's errors name it."""
        return f"tree {self.tree_id.hex()}"

    @classmethod
    def load(cls, repo: Repository, tree_id: bytes) -> ParentDir:
        """Read a tree blob's entries (RepositoryError as ``Repository.load_tree``)."""
        what = f"tree {tree_id.hex()}"
        return cls(tree_id, node_docs(repo.read_blob(BlobType.TREE, tree_id), what))


def same_stat(doc: EntryDoc, st: os.stat_result, kind: NodeType) -> bool:
    """True if ``st`` describes the same, untouched object as the previous snapshot's
    entry. Any change of content, mode, owner, link count or xattrs updates ctime."""
    get = doc.get
    return bool(
        get("ctime_ns", 0) == st.st_ctime_ns
        and get("mtime_ns", 0) == st.st_mtime_ns
        and get("inode", 0) == st.st_ino
        and doc["type"] == kind._value_
        and get("size", 0) == (st.st_size if kind == NodeType.FILE else 0)
        and get("dev", 0) == st.st_dev
    )


def is_file(doc: EntryDoc | None) -> bool:
    return doc is not None and doc["type"] == _FILE


def plain(doc: EntryDoc) -> bool:
    """True if the entry holds nothing ``Node.from_json`` would decode beyond its
    content ids (a file) or subtree id (a directory): no xattrs, no hard-link path,
    no ids of another kind of entry. Anything else is checked by building its ``Node``."""
    get = doc.get
    if get("xattrs") or get("link") is not None:
        return False
    kind = doc["type"]
    if kind == _FILE:
        return get("subtree") is None
    if kind == _DIR:
        return not get("content")
    return not get("content") and get("subtree") is None  # a symlink, fifo, device


def content_ids(doc: EntryDoc) -> tuple[bytes, ...]:
    """The entry's content blob ids, decoded as ``Node.from_json`` decodes them
    (ValueError, TypeError if they are malformed)."""
    content = doc.get("content")
    return tuple(map(bytes.fromhex, content)) if content else ()


def subtree_id(doc: EntryDoc) -> bytes | None:
    """The entry's subtree id, decoded as ``Node.from_json`` decodes it."""
    subtree = doc.get("subtree")
    return None if subtree is None else bytes.fromhex(subtree)


def to_node(entry: Node | EntryDoc) -> Node:
    """A node to encode: a reused entry's ``Node``, built from its checked document."""
    return entry if isinstance(entry, Node) else Node.from_json(entry)
