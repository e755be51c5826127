"""Marking what snapshots use: walk trees one at a time, keeping only blob ids."""

from __future__ import annotations

from comet.agent.cancel import CancelToken
from comet.agent.repository.repository import Repository


def mark_reachable(repo: Repository, root: bytes, used: set[bytes], cancel: CancelToken) -> int:
    """Add ``root`` and every tree and data blob below it to ``used``; return how many
    trees were read. Trees already in ``used`` are not read again, so marking many
    snapshots that share directories reads each directory once. Only one tree is held
    in memory at a time (plus the tree cache). Raises the RepositoryError of an
    unreadable tree."""
    if root in used:
        return 0
    used.add(root)
    stack = [root]
    read = 0
    while stack:
        cancel.check()
        tree = repo.load_tree(stack.pop())
        read += 1
        for node in tree.nodes:
            used.update(node.content)
            if node.subtree is not None and node.subtree not in used:
                used.add(node.subtree)
                stack.append(node.subtree)
    return read
