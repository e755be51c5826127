"""Tree decoding builds nodes without the dataclass constructor (a listing or restore of
many small files decodes one node per file): what it builds must be exactly what the
constructor builds, for every field a tree may carry or leave out."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comet.agent.errors import IntegrityError
from comet.agent.repository.tree import Node, NodeType, Tree

_ids = st.binary(min_size=32, max_size=32)
_ints = st.integers(min_value=0, max_value=2**63 - 1)
_text = st.text(max_size=12)

nodes = st.builds(
    Node,
    name=_text,
    type=st.sampled_from(list(NodeType)),
    mode=_ints,
    uid=_ints,
    gid=_ints,
    user=_text,
    group=_text,
    mtime_ns=_ints,
    ctime_ns=_ints,
    inode=_ints,
    dev=_ints,
    nlink=_ints,
    size=_ints,
    content=st.lists(_ids, max_size=3).map(tuple),
    subtree=st.none() | _ids,
    target=st.none() | st.text(min_size=1, max_size=12),  # encode leaves out ''
    link=st.none() | st.lists(_text, min_size=1, max_size=3).map(tuple),
    xattrs=st.dictionaries(_text, st.binary(max_size=8), max_size=3).map(
        lambda d: tuple(sorted(d.items()))
    ),
    rdev_major=_ints,
    rdev_minor=_ints,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(nodes, max_size=6, unique_by=lambda n: n.name))
def test_decoded_nodes_equal_the_constructed_ones(made: list[Node]) -> None:
    tree = Tree(tuple(sorted(made, key=lambda n: n.name)))
    data = tree.encode()
    decoded = Tree.decode(data, "tree")
    assert decoded == tree
    assert [hash(n) for n in decoded.nodes] == [hash(n) for n in tree.nodes]
    assert decoded.encode() == data  # tree ids depend on these exact bytes


def _decode_one(node: dict[str, Any]) -> Node:
    return Tree.decode(json.dumps({"v": 1, "nodes": [node]}).encode(), "tree").nodes[0]


def test_nulls_and_unsorted_xattrs_decode_as_the_constructor_defaults() -> None:
    node = _decode_one(
        {
            "name": "a",
            "type": "file",
            "content": None,
            "xattrs": {"user.b": base64.b64encode(b"2").decode(), "user.a": ""},
            "link": ["x", "y"],
        }
    )
    assert node == Node(
        "a", NodeType.FILE, link=("x", "y"), xattrs=(("user.a", b""), ("user.b", b"2"))
    )
    assert _decode_one({"name": "b", "type": "dir", "xattrs": None}) == Node("b", NodeType.DIR)


@pytest.mark.parametrize(
    ("node", "words"),
    [
        ({"name": 1, "type": "file"}, "node name is not a string"),
        ({"type": "file"}, "'name'"),
        ({"name": "a"}, "'type'"),
        ({"name": "a", "type": "door"}, "'door'"),
        ({"name": "a", "type": "file", "bogus": 1}, "unknown node fields ['bogus']"),
        ({"name": "a", "type": "file", "content": ["zz"]}, "non-hexadecimal"),
        (3, "node is not an object"),
    ],
)
def test_a_malformed_node_is_an_integrity_error(node: object, words: str) -> None:
    with pytest.raises(IntegrityError, match="malformed node") as caught:
        Tree.decode(json.dumps({"v": 1, "nodes": [node]}).encode(), "tree t")
    assert words in str(caught.value)
