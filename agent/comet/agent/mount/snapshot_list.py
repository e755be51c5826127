"""``SnapshotList``: the snapshots a mount shows, re-listed on demand; only snapshot
records not seen before are read, so a refresh costs one listing of ``snapshots/``."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from comet.agent.errors import SnapshotNotFoundError
from comet.agent.repository.repository import Repository
from comet.agent.repository.snapshot import Snapshot


@dataclass(frozen=True, kw_only=True)
class SnapshotFilter:
    """Empty fields match everything. ``snapshot`` is an id prefix (hex)."""

    item_ids: frozenset[str] = frozenset()
    device_id: str = ""
    snapshot: str = ""

    def matches(self, s: Snapshot) -> bool:
        return (
            (not self.item_ids or s.item_id in self.item_ids)
            and (not self.device_id or s.device_id == self.device_id)
            and s.id.hex().startswith(self.snapshot.lower())
        )


class SnapshotList:
    def __init__(self, repo: Repository, snapshot_filter: SnapshotFilter) -> None:
        self._repo = repo
        self._filter = snapshot_filter
        self._known: dict[str, Snapshot | None] = {}
        self._lock = threading.Lock()

    def current(self) -> list[Snapshot]:
        """The matching snapshots now, oldest first. New index files are loaded first,
        so the blobs of a snapshot that just appeared can be read."""
        with self._lock:
            self._repo.refresh_index()
            keys = {o.key.rsplit("/", 1)[-1] for o in self._repo.storage.list("snapshots/")}
            for gone in self._known.keys() - keys:
                del self._known[gone]
            for key in keys - self._known.keys():
                try:
                    snapshot: Snapshot | None = self._repo.load_snapshot(key)
                except SnapshotNotFoundError:  # deleted between listing and reading
                    snapshot = None
                self._known[key] = snapshot
            out = [s for s in self._known.values() if s is not None and self._filter.matches(s)]
        out.sort(key=lambda s: (s.start_ns, s.id))
        return out
