"""``ServedMount``: a repository shown as a filesystem, with its cache and session;
what the agent keeps for each active mount."""

from __future__ import annotations

import threading
from collections.abc import Callable

from comet.agent.mount.blob_cache import BlobCache
from comet.agent.mount.filesystem import INLINE_READ_BYTES, SnapshotFilesystem
from comet.agent.mount.options import MountOptions
from comet.agent.mount.session import MountSession
from comet.agent.mount.snapshot_list import SnapshotFilter, SnapshotList
from comet.agent.mount.tree_cache import TreeCache
from comet.agent.repository.repository import Repository
from comet.agent.repository.snapshot import Snapshot
from comet.agent.storage.local import LocalStorage


class ServedMount:
    """Starts serving on construction (raises MountError if it cannot); the repository
    is closed when the mount ends, however it ends."""

    def __init__(
        self,
        repo: Repository,
        options: MountOptions,
        item_names: Callable[[], dict[str, str]],
        *,
        on_end: Callable[[ServedMount], None] = lambda m: None,
    ) -> None:
        self.options = options
        self._repo = repo
        self._on_end = on_end
        self.cache: BlobCache[bytes] = BlobCache(repo, max_bytes=options.cache_bytes)
        self.trees = TreeCache(repo)
        snapshots = SnapshotList(
            repo,
            SnapshotFilter(
                item_ids=options.item_ids,
                device_id="" if options.all_devices else options.device_id,
                snapshot=options.snapshot,
            ),
        )

        def source() -> tuple[list[Snapshot], dict[str, str]]:
            return snapshots.current(), item_names()

        local = isinstance(repo.storage, LocalStorage)
        self.filesystem = SnapshotFilesystem(
            repo,
            self.cache,
            self.trees,
            source,
            all_devices=options.all_devices,
            list_ttl=options.list_ttl,
            inline_read_bytes=INLINE_READ_BYTES if local else 0,
            inline_trees=local,
        )
        self.session = MountSession(
            self.filesystem,
            options.mountpoint,
            allow_other=options.allow_other,
            serial=local,
            on_end=self._ended,
        )
        self._closed = False
        self._close_lock = threading.Lock()
        try:
            self.session.start()
        except BaseException:
            self._ended()
            raise

    @property
    def mountpoint(self) -> str:
        return self.session.mountpoint

    def _ended(self) -> None:
        with self._close_lock:  # the mount thread and a failed start may both get here
            if self._closed:
                return
            self._closed = True
        self.cache.close()
        self.trees.close()
        self._repo.close()
        self._on_end(self)

    def stop(self) -> None:
        self.session.stop()

    def wait(self, timeout: float | None = None) -> bool:
        return self.session.wait(timeout)
