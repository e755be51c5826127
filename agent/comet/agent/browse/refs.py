"""Naming snapshots the way people do: a full id, a unique id prefix, ``latest`` or
``latest~N`` (the Nth before the newest), narrowed by item, tags and device."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from comet.agent.errors import SnapshotNotFoundError
from comet.agent.repository.format import ID_SIZE
from comet.agent.repository.repository import Repository
from comet.agent.repository.snapshot import Snapshot

_LATEST = re.compile(r"latest(?:~(\d+))?")


def has_tags(snapshot: Snapshot, tags: Collection[str]) -> bool:
    """True if ``snapshot`` carries every one of ``tags``."""
    return set(tags) <= set(snapshot.tags)


def select_snapshots(
    snapshots: Iterable[Snapshot], *, item_id: str = "", tags: Collection[str] = ()
) -> list[Snapshot]:
    """The snapshots of ``item_id`` (any item if empty) carrying every tag, in order."""
    return [s for s in snapshots if (not item_id or s.item_id == item_id) and has_tags(s, tags)]


def is_latest(ref: str) -> bool:
    return _LATEST.fullmatch(ref) is not None


def resolve_snapshot(
    repo: Repository,
    ref: str,
    *,
    item_id: str = "",
    tags: Collection[str] = (),
    device_id: str = "",
    item_label: str = "",
) -> Snapshot:
    """The snapshot ``ref`` names. ``latest`` without an item prefers ``device_id``'s
    snapshots (this device's newest backup), falling back to any device's. Raises
    SnapshotNotFoundError with a message that says what to do."""
    ref = ref.strip()
    match = _LATEST.fullmatch(ref)
    if match is None:
        return _by_id(repo, ref)
    back = int(match.group(1) or 0)
    candidates = select_snapshots(repo.list_snapshots(), item_id=item_id, tags=tags)
    if not item_id and device_id:
        candidates = [s for s in candidates if s.device_id == device_id] or candidates
    if back < len(candidates):
        return candidates[-1 - back]
    what = f"of {item_label or item_id!r}" if item_id else "at all"
    if tags:
        what += f" tagged {', '.join(sorted(tags))}"
    if not candidates:
        raise SnapshotNotFoundError(f"this vault holds no snapshot {what}")
    raise SnapshotNotFoundError(f"{ref}: this vault holds only {len(candidates)} snapshots {what}")


def _by_id(repo: Repository, ref: str) -> Snapshot:
    hex_id = ref.lower()
    if not hex_id or re.fullmatch(r"[0-9a-f]+", hex_id) is None:
        raise SnapshotNotFoundError(
            f"{ref!r} names no snapshot: give a snapshot id (or its first characters),"
            " 'latest' or 'latest~N'"
        )
    if len(hex_id) == 2 * ID_SIZE:
        return repo.load_snapshot(hex_id)
    matches = [
        key
        for key in (o.key.rsplit("/", 1)[-1] for o in repo.storage.list("snapshots/"))
        if key.startswith(hex_id)
    ]
    if not matches:
        raise SnapshotNotFoundError(
            f"no snapshot id starts with {ref!r} (see 'comet snapshots --vault VAULT')"
        )
    if len(matches) > 1:
        raise SnapshotNotFoundError(
            f"{len(matches)} snapshot ids start with {ref!r}; give more characters"
        )
    return repo.load_snapshot(matches[0])
