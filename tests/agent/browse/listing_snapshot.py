"""A crafted snapshot for pinning what ``comet ls`` and ``comet find`` print: names a
JSON or table writer must escape (quotes, backslashes, control characters, line and
paragraph separators, non-ASCII), every node type, times at the edges (none, before
1970, whole seconds, the last nanosecond of 2199), mode bits past 0o7777, and unsafe
names that a listing leaves out with everything below them."""

from __future__ import annotations

from comet.agent.repository import Repository
from comet.agent.repository.format import BlobType
from comet.agent.repository.tree import Node, NodeType, Tree
from tests.agent.crafted import commit_tree

T0 = 1_600_000_000_123_456_789
ODD_NAMES = (
    'quote"d',
    "back\\slash",
    "new\nline",
    "tab\there",
    "ctl\x01\x1f",
    "del\x7f",
    "sep\u2028\u2029",
    "café ☕ 🎉",
    " -lead space",
    "...",
)


def crafted_listing_snapshot(repo: Repository) -> bytes:
    """Commit the crafted snapshot into ``repo``; returns its id."""
    data = b"some file contents"
    blob = repo.sealer.blob_id(BlobType.DATA, data)
    files = [
        Node(name, NodeType.FILE, mode=0o100644, mtime_ns=T0 + i, size=len(data), content=(blob,))
        for i, name in enumerate(ODD_NAMES)
    ]
    special = [
        Node("link", NodeType.SYMLINK, mode=0o120777, mtime_ns=T0, target='../"odd"\ttarget'),
        Node("fifo", NodeType.FIFO, mode=0o10600, mtime_ns=-1_500_000_000),
        Node("char", NodeType.CHARDEV, mode=0o20660, mtime_ns=0, rdev_major=1, rdev_minor=3),
        Node("block", NodeType.BLOCKDEV, mode=0o60660, mtime_ns=7 * 10**9, rdev_major=8),
        Node("sock", NodeType.SOCKET, mode=0o147755, mtime_ns=7_258_118_399_999_999_999),
        Node("big", NodeType.FILE, mode=0o104755, mtime_ns=T0, size=2**40, content=(blob,)),
        Node("empty", NodeType.FILE, mode=0o100000, mtime_ns=1),
    ]
    hidden = Tree((Node("below-unsafe", NodeType.FILE, mode=0o100644, mtime_ns=T0),))
    hidden_id = repo.sealer.blob_id(BlobType.TREE, hidden.encode())
    inner = Tree(tuple(sorted(files + special, key=lambda n: n.name)))
    inner_id = repo.sealer.blob_id(BlobType.TREE, inner.encode())
    deeper = Tree((Node("inner", NodeType.DIR, mode=0o40700, mtime_ns=T0, subtree=inner_id),))
    deeper_id = repo.sealer.blob_id(BlobType.TREE, deeper.encode())
    root = Tree(
        (
            Node("..", NodeType.DIR, mode=0o40755, mtime_ns=T0, subtree=hidden_id),
            Node("a/b", NodeType.FILE, mode=0o100644, mtime_ns=T0),
            Node("empty dir", NodeType.DIR, mode=0o40755, mtime_ns=T0),
            Node("top dir", NodeType.DIR, mode=0o42755, mtime_ns=T0 - 10**9, subtree=deeper_id),
            Node("z\0nul", NodeType.FILE, mode=0o100644, mtime_ns=T0),
            Node("zz last", NodeType.FILE, mode=0o100644, mtime_ns=T0, size=5, content=(blob,)),
        )
    )
    return commit_tree(repo, root, [hidden, inner, deeper], [data])
