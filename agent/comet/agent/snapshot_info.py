"""What a snapshot listing shows about each snapshot."""

from __future__ import annotations

from dataclasses import dataclass


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
