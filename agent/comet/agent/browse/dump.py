"""``dump``: one path of a snapshot as a byte stream: a file's content as it is, a
directory (or the whole snapshot) as a pax tar stream, the way ``restore --archive
tar`` writes it. Nothing is spooled: bytes go to ``out`` as blobs are read."""

from __future__ import annotations

import enum

from comet.agent.browse.listing import node_at, snapshot_path
from comet.agent.cancel import CancelToken
from comet.agent.errors import BrowsePathError
from comet.agent.repository.format import BlobType
from comet.agent.repository.repository import Repository
from comet.agent.repository.snapshot import Snapshot
from comet.agent.repository.tree import NodeType
from comet.agent.restore.names import show_path
from comet.agent.restore.run import run_restore
from comet.agent.restore.tar import ByteSink, TarTarget


class DumpKind(enum.StrEnum):
    FILE = "file"
    TAR = "tar"


def dump_kind(repo: Repository, snapshot: Snapshot, path: str) -> DumpKind:
    """What ``dump`` would write for ``path``. Raises BrowsePathError for a path that
    is not in the snapshot or is neither a file nor a directory."""
    node = node_at(repo, snapshot, snapshot_path(path))
    if node is None or node.type == NodeType.DIR:
        return DumpKind.TAR
    if node.type == NodeType.FILE:
        return DumpKind.FILE
    raise BrowsePathError(
        f"{show_path(snapshot_path(path))} is a {node.type}: only a file or a directory"
        " can be dumped"
    )


def dump(
    repo: Repository,
    snapshot: Snapshot,
    path: str,
    out: ByteSink,
    *,
    cancel: CancelToken | None = None,
    hostname: str = "",
) -> DumpKind:
    """Write ``path`` of ``snapshot`` to ``out`` (not closed). Raises BrowsePathError,
    CancelledError, the RepositoryError of unreadable data and ArchiveWriteError."""
    cancel = cancel or CancelToken()
    kind = dump_kind(repo, snapshot, path)
    if kind == DumpKind.TAR:
        parts = snapshot_path(path)
        run_restore(
            repo,
            snapshot.id,
            TarTarget(out),
            paths=[show_path(parts)] if parts else None,
            cancel=cancel,
            hostname=hostname,
        )
        return kind
    node = node_at(repo, snapshot, snapshot_path(path))
    assert node is not None
    for blob_id in node.content:
        cancel.check()
        out.write(repo.read_blob(BlobType.DATA, blob_id))
    out.flush()
    return kind
