"""Tree decoding builds nodes without the dataclass constructor (a listing or restore of
many small files decodes one node per file): what it builds must be exactly what the
constructor builds, for every field a tree may carry or leave out."""

from __future__ import annotations

import base64
import dataclasses
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


def _generic_json(node: Node) -> dict[str, Any]:
    """Tree version 1's rule for a node, written the plain way: every field as it is
    unless it is None, an empty string or an empty tuple."""
    out: dict[str, Any] = {"name": node.name, "type": node.type.value}
    for name in _SCALARS:
        value = getattr(node, name)
        if value != "" and value is not None:
            out[name] = value
    if node.content:
        out["content"] = [b.hex() for b in node.content]
    if node.subtree is not None:
        out["subtree"] = node.subtree.hex()
    if node.target:
        out["target"] = node.target
    if node.link:
        out["link"] = list(node.link)
    if node.xattrs:
        out["xattrs"] = {k: base64.b64encode(v).decode() for k, v in node.xattrs}
    return out


@settings(max_examples=60, deadline=None)
@given(nodes)
def test_to_json_follows_the_version_1_rule(node: Node) -> None:
    # to_json and the constructor are spelled out field by field for speed.
    assert node.to_json() == _generic_json(node)
    assert json.dumps(node.to_json(), sort_keys=True) == json.dumps(
        _generic_json(node), sort_keys=True
    )
    assert Node(**{f: getattr(node, f) for f in Node.__dataclass_fields__}) == node


def test_constructor_defaults_are_the_fields_defaults() -> None:
    node = Node("n", NodeType.FILE)
    for f in dataclasses.fields(Node):
        if f.default is not dataclasses.MISSING:
            assert getattr(node, f.name) == f.default, f.name
    assert dataclasses.replace(node, size=5).size == 5
    # A decoded tree's nulls (a crafted or damaged blob) are left out as before.
    odd = Tree.decode(b'{"nodes":[{"name":"a","type":"file","mode":null}],"v":1}', "t")
    assert odd.nodes[0].mode is None and "mode" not in odd.nodes[0].to_json()
