"""``node_docs``: a tree's nodes as parsed JSON, for a listing that builds no ``Node``,
refused in the same cases and words as ``Tree.decode``."""

from __future__ import annotations

import json

import pytest

from comet.agent.errors import IntegrityError
from comet.agent.repository.tree import Node, NodeType, Tree, node_docs


@pytest.mark.parametrize(
    ("node", "words"),
    [
        ({"name": 1, "type": "file"}, "node name is not a string"),
        ({"type": "file"}, "'name'"),
        ({"name": "a"}, "'type'"),
        ({"name": "a", "type": "door"}, "'door'"),
        ({"name": "a", "type": ["file"]}, "unhashable"),
        ({"name": "a", "type": "file", "bogus": 1}, "unknown node fields ['bogus']"),
        (3, "node is not an object"),
    ],
)
def test_node_docs_refuses_what_decode_refuses(node: object, words: str) -> None:
    """A listing reads the parsed nodes without building them, and refuses the same
    nodes with the same words (field values are read by the listing as decode reads
    them; it does not check content ids it never uses)."""
    data = json.dumps({"v": 1, "nodes": [{"name": "ok", "type": "dir"}, node]}).encode()
    for read in (Tree.decode, node_docs):
        with pytest.raises(IntegrityError, match="malformed node") as caught:
            read(data, "tree t")
        assert words in str(caught.value)
    with pytest.raises(IntegrityError, match="not a valid tree"):
        node_docs(b"[1]", "tree t")
    good = Tree((Node("a", NodeType.FILE, size=3), Node("b", NodeType.DIR, subtree=b"i" * 32)))
    assert [Node.from_json(d) for d in node_docs(good.encode(), "tree t")] == list(good.nodes)
