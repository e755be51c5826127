"""A repository opened to browse (``index_only=BlobType.TREE``) indexes its trees and
nothing else: a listing of a vault of many small files would otherwise load an index
entry per file that it never reads."""

from __future__ import annotations

import pytest

from comet.agent.repository import Repository
from comet.agent.repository.format import BlobType
from comet.agent.repository.tree import Node, NodeType, Tree
from comet.agent.storage.memory import MemoryStorage

VAULT_KEY = bytes(range(32))


def test_a_trees_only_repository_indexes_trees_only() -> None:
    storage = MemoryStorage()
    repo = Repository.init(storage, VAULT_KEY)
    blobs = [b"file %d" % i for i in range(20)]
    tree = Tree((Node("a", NodeType.FILE, size=6),)).encode()
    tree_id = repo.sealer.blob_id(BlobType.TREE, tree)
    with repo.blob_writer() as writer:
        for data in blobs:
            writer.add(BlobType.DATA, repo.sealer.blob_id(BlobType.DATA, data), data)
        writer.add(BlobType.TREE, tree_id, tree)
        writer.flush()

    trees = Repository.open(storage, VAULT_KEY, index_only=BlobType.TREE)
    assert len(trees.index) == 1 and tree_id in trees.index
    assert trees.load_tree(tree_id).nodes[0].name == "a"
    data_id = repo.sealer.blob_id(BlobType.DATA, blobs[0])
    assert data_id not in trees.index
    with pytest.raises(ValueError, match="opened to read TREE only"):
        trees.read_blob(BlobType.DATA, data_id)
    trees.reload_index()
    assert len(trees.index) == 1  # reloading keeps to trees

    everything = Repository.open(storage, VAULT_KEY)
    assert len(everything.index) == 21
    assert everything.read_blob(BlobType.DATA, data_id) == blobs[0]
