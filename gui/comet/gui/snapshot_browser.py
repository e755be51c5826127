"""``SnapshotBrowser``: "Browse snapshot in file manager". Asks the agent to mount one
snapshot read-only in a fresh temporary folder, opens it with the desktop's file
manager, and unmounts (and removes the folder) when ``close_all`` is called."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable

from PyQt6.QtCore import QObject, QUrl, pyqtSignal
from PyQt6.QtGui import QDesktopServices

from comet.gui.agent_client import AgentClient, ApiError


class SnapshotBrowser(QObject):
    opened = pyqtSignal(str)  # the folder shown
    failed = pyqtSignal(str)  # a sentence for the person

    def __init__(
        self,
        client: AgentClient,
        *,
        open_url: Callable[[QUrl], object] = QDesktopServices.openUrl,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.open_url = open_url
        self.mounts: list[str] = []

    def browse(self, vault_id: str, snapshot_id: str) -> None:
        mountpoint = tempfile.mkdtemp(prefix="comet-browse-")

        def mounted(folder: object) -> None:
            self.mounts.append(mountpoint)
            self.open_url(QUrl.fromLocalFile(str(folder)))
            self.opened.emit(str(folder))

        def refused(error: ApiError) -> None:
            with contextlib.suppress(OSError):
                os.rmdir(mountpoint)
            self.failed.emit(f"Could not open the snapshot: {error.message}")

        self.client.mount_snapshot(vault_id, snapshot_id, mountpoint).then(mounted, refused)

    def close_all(self) -> None:
        """Unmount every snapshot this browser opened."""
        for mountpoint in self.mounts:

            def gone(_: object, path: str = mountpoint) -> None:
                with contextlib.suppress(OSError):
                    os.rmdir(path)

            self.client.unmount(mountpoint).then(gone, lambda error: None)
        self.mounts = []
