"""Snapshots crafted through the engine API, with trees no backup would write (hostile
names, repeated names, escapes): what restore and mount tests feed the engine."""

from __future__ import annotations

from comet.agent.repository import Repository
from comet.agent.repository.format import BlobType
from comet.agent.repository.snapshot import Snapshot
from comet.agent.repository.tree import Tree


def commit_tree(
    repo: Repository,
    root: Tree,
    subtrees: list[Tree],
    blobs: list[bytes],
    *,
    item_id: str = "evil",
    device_id: str = "evil",
) -> bytes:
    """Store ``blobs`` and the trees as they are and commit a snapshot of ``root``;
    returns the snapshot id."""
    with repo.blob_writer() as writer:
        for data in blobs:
            writer.add(BlobType.DATA, repo.sealer.blob_id(BlobType.DATA, data), data)
        for tree in [*subtrees, root]:
            data = tree.encode()
            writer.add(BlobType.TREE, repo.sealer.blob_id(BlobType.TREE, data), data)
        writer.flush()
    root_id = repo.sealer.blob_id(BlobType.TREE, root.encode())
    return repo.save_snapshot(Snapshot(item_id, device_id, "evil", root_id, 1, 2))
