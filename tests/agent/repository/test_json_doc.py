"""Tree and snapshot documents written by ``json_doc.canonical`` and read by
``json_doc.parse`` exactly as the standard library writes and reads them, for every
node a backup can write (random names, ASCII control characters and DEL, file names
that are not UTF-8, 64-bit numbers, xattrs) and for the malformed corners a crafted
blob can hold."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comet.agent.repository import json_doc
from comet.agent.repository.tree import Node, NodeType, Tree

names = st.one_of(
    st.text(min_size=1, max_size=40),
    st.text(st.characters(max_codepoint=127), min_size=1, max_size=40),  # DEL, controls
    st.binary(min_size=1, max_size=20).map(os.fsdecode),  # not UTF-8: lone surrogates
)
ints = st.integers(min_value=0, max_value=2**63 - 1)
# A file's time in nanoseconds passes 64 bits after 2554 and before 1677.
times = st.one_of(ints, st.integers(min_value=-(2**80), max_value=2**80))
nodes = st.builds(
    Node,
    name=names,
    type=st.sampled_from(list(NodeType)),
    mode=st.integers(0, 0o7777),
    uid=ints,
    gid=ints,
    user=st.text(max_size=10),
    mtime_ns=times,
    ctime_ns=times,
    inode=ints,
    size=ints,
    content=st.lists(st.binary(min_size=32, max_size=32), max_size=3).map(tuple),
    target=st.none() | names,
    xattrs=st.lists(
        st.tuples(st.text(min_size=1, max_size=8), st.binary(max_size=8)), max_size=2
    ).map(lambda kv: tuple(sorted(dict(kv).items()))),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(nodes, max_size=12))
def test_every_tree_parses_as_the_standard_library_parses_it(tree_nodes: list[Node]) -> None:
    tree = Tree(tuple(tree_nodes))
    data = tree.encode()
    doc = {"v": 1, "nodes": [n.to_json() for n in sorted(tree.nodes, key=lambda n: n.name)]}
    # Tree ids hash these bytes: they must be json's, byte for byte.
    assert data == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")
    assert json_doc.parse(data) == json.loads(data)
    assert Tree.decode(data, "tree").encode() == data  # and decodes whole, as written


@pytest.mark.parametrize(
    "text",
    [
        '{"name":"\\udcff"}',
        '{"a":1e400}',
        '{"a":NaN}',
        '{"a":"\\u0000"}',
        '{"a":-0.0}',
        '{"mtime":20000000000000000000}',  # past 64 bits: orjson alone gives a float
        '{"t":[1,-32503680000000000000]}',
        '{"name":"a:12345678901234567890","n":1}',
    ],
)
def test_corners_read_as_before(text: str) -> None:
    expected = json.loads(text)
    got = json_doc.parse(text.encode())
    assert repr(got) == repr(expected)


@pytest.mark.parametrize("data", [b"", b"{", b"\xff\xfe", b'{"v":1,}', b"[1,2"])
def test_malformed_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        json_doc.parse(data)
