"""What a snapshot listing shows about each snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from comet.agent.repository.snapshot import Snapshot


@dataclass(frozen=True)
class SnapshotInfo:
    snapshot_id: str
    item_id: str
    item_name: str
    device_id: str
    start_ns: int
    end_ns: int
    files: int
    dirs: int
    bytes: int
    paths: tuple[str, ...]
    unknown_item: bool
    tags: tuple[str, ...] = ()


def snapshot_info(s: Snapshot, names: Mapping[str, str]) -> SnapshotInfo:
    """``s`` as listings show it; ``names`` maps the account's item ids to names."""
    return SnapshotInfo(
        snapshot_id=s.id.hex(),
        item_id=s.item_id,
        item_name=names.get(s.item_id, ""),
        device_id=s.device_id,
        start_ns=s.start_ns,
        end_ns=s.end_ns,
        files=s.files,
        dirs=s.dirs,
        bytes=s.total_bytes,
        paths=tuple(s.paths),
        unknown_item=s.item_id not in names,
        tags=s.tags,
    )
