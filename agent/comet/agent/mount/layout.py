"""``Layout``: the virtual directories above the snapshots, built from a snapshot list.

    by-item/<item name>/<snapshot time>/…      and a ``latest`` symlink per item
    by-device/<device>/<item name>/<time>/…   (with ``all_devices``)

Snapshot times are the backup's start in UTC (``2026-12-06T20:02:18Z``); two snapshots
of one item in the same second get their id's first 8 hex digits appended. Names that
collide or could not be file names are made unique the same way.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from comet.agent.repository.snapshot import Snapshot

Path = tuple[str, ...]

BY_ITEM = "by-item"
BY_DEVICE = "by-device"
LATEST = "latest"


@dataclass
class Layout:
    """``dirs`` maps each virtual directory to its entry names (sorted), ``snapshots``
    each snapshot directory to its snapshot, ``links`` each symlink to its target."""

    dirs: dict[Path, list[str]] = field(default_factory=dict)
    snapshots: dict[Path, Snapshot] = field(default_factory=dict)
    links: dict[Path, str] = field(default_factory=dict)


def snapshot_time_name(snapshot: Snapshot) -> str:
    when = datetime.fromtimestamp(snapshot.start_ns / 1e9, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _safe(name: str, fallback: str) -> str:
    name = name.replace("/", "_").replace("\0", "_")
    return fallback if name in ("", ".", "..") else name


def _unique_names(keys: dict[str, str]) -> dict[str, str]:
    """key → display name, adding ``-<key prefix>`` where display names collide."""
    counts: dict[str, int] = defaultdict(int)
    for name in keys.values():
        counts[name] += 1
    return {k: (n if counts[n] == 1 else f"{n}-{k[:8]}") for k, n in keys.items()}


def build_layout(
    snapshots: list[Snapshot], item_names: dict[str, str], *, all_devices: bool
) -> Layout:
    """The layout for ``snapshots`` (already filtered to what the mount shows)."""
    layout = Layout()
    items = _unique_names(
        {s.item_id: _safe(item_names.get(s.item_id, ""), s.item_id) for s in snapshots}
    )
    roots = [BY_ITEM] + ([BY_DEVICE] if all_devices else [])
    layout.dirs[()] = roots
    _add_items(layout, (BY_ITEM,), snapshots, items)
    if all_devices:
        devices = _unique_names({s.device_id: _safe(s.hostname, s.device_id) for s in snapshots})
        by_device: dict[str, list[Snapshot]] = defaultdict(list)
        for s in snapshots:
            by_device[devices[s.device_id]].append(s)
        layout.dirs[(BY_DEVICE,)] = sorted(by_device)
        for device, group in by_device.items():
            _add_items(layout, (BY_DEVICE, device), group, items)
    return layout


def _add_items(
    layout: Layout, base: Path, snapshots: list[Snapshot], items: dict[str, str]
) -> None:
    by_item: dict[str, list[Snapshot]] = defaultdict(list)
    for s in snapshots:
        by_item[items[s.item_id]].append(s)
    layout.dirs[base] = sorted(by_item)
    for item, group in by_item.items():
        group.sort(key=lambda s: (s.start_ns, s.id))
        names = _unique_names({s.id.hex(): snapshot_time_name(s) for s in group})
        item_path = (*base, item)
        entries = [names[s.id.hex()] for s in group]
        for s in group:
            layout.snapshots[(*item_path, names[s.id.hex()])] = s
        layout.links[(*item_path, LATEST)] = entries[-1]
        layout.dirs[item_path] = sorted([*entries, LATEST])
