"""``TrayMenu``: the app in the system tray: a dot in the status colour, the status as a
line of text, "Back up now" per Protected Item and Storage Vault, "Open Comet Backup".

The menu is built whether or not the desktop has a tray (so it can be driven offscreen);
the ``QSystemTrayIcon`` itself only exists where ``QSystemTrayIcon.isSystemTrayAvailable()``.
"""

from __future__ import annotations

from PyQt6.QtCore import QObject, pyqtSignal
from PyQt6.QtGui import QAction, QIcon
from PyQt6.QtWidgets import QMenu, QSystemTrayIcon

from comet.gui.agent_client import AgentClient, ApiError
from comet.gui.records import AgentStatus, Classification, Job, JobStatus, Profile
from comet.gui.theme import Tone, dot_icon

ICON_SIZE = 32


def status_line(status: AgentStatus, running: int, last: JobStatus | None) -> tuple[str, Tone]:
    """What the tray says, and in which colour, from the agent's status and the last
    backup's outcome."""
    if not status.connected:
        reason = f" ({status.last_error})" if status.last_error else ""
        return f"Not connected to the server{reason}", Tone.WARNING
    if running:
        return f"{running} job{'s' if running > 1 else ''} running", Tone.RUNNING
    if last is None:
        return "Connected; no backup yet", Tone.MUTED
    if last is JobStatus.SUCCESS:
        return "Last backup succeeded", Tone.OK
    if last in (JobStatus.WARNING, JobStatus.SKIPPED, JobStatus.MISSED, JobStatus.CANCELLED):
        return f"Last backup: {last.name.lower().replace('_', ' ')}", Tone.WARNING
    return f"Last backup failed ({last.name.lower().replace('_', ' ')})", Tone.ERROR


class TrayMenu(QObject):
    job_started = pyqtSignal(object)  # Job
    open_requested = pyqtSignal()
    quit_requested = pyqtSignal()

    def __init__(
        self, client: AgentClient, *, parent: QObject | None = None, use_tray: bool | None = None
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.status = AgentStatus()
        self.profile: Profile | None = None
        self._last: JobStatus | None = None
        self.menu = QMenu()
        self.menu.setToolTipsVisible(True)
        self.status_action = QAction("Starting…", self.menu)
        self.status_action.setToolTip("Open Comet Backup")
        self.status_action.triggered.connect(self.open_requested)
        self.backup_menu = QMenu("Back up now", self.menu)
        self.open_action = QAction("Open Comet Backup", self.menu)
        self.open_action.triggered.connect(self.open_requested)
        self.quit_action = QAction("Close the app", self.menu)
        self.quit_action.setToolTip("Scheduled backups keep running in the agent")
        self.quit_action.triggered.connect(self.quit_requested)
        self.menu.addAction(self.status_action)
        self.menu.addSeparator()
        self.menu.addMenu(self.backup_menu)
        self.menu.addAction(self.open_action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.message = ""
        self._tone = Tone.MUTED
        self.icon: QSystemTrayIcon | None = None
        available = QSystemTrayIcon.isSystemTrayAvailable() if use_tray is None else use_tray
        if available:
            self.icon = QSystemTrayIcon(self)
            self.icon.setContextMenu(self.menu)
            self.icon.activated.connect(self._activated)
            self.icon.show()
        self._rebuild_backups()
        self._show_status()

    # ------------------------------------------------------------ state

    def set_status(self, status: AgentStatus) -> None:
        self.status = status
        self._show_status()

    def set_profile(self, profile: Profile) -> None:
        self.profile = profile
        self._rebuild_backups()

    def set_history(self, jobs: list[Job]) -> None:
        """The newest backup's outcome (``jobs`` newest first, as History has them)."""
        for job in jobs:
            if job.classification is Classification.BACKUP and not job.status.running:
                self._last = job.status
                break
        self._show_status()

    def on_job(self, job: Job) -> None:
        ended = not job.status.running and job.status is not JobStatus.UNKNOWN
        if job.classification is Classification.BACKUP and ended:
            self._last = job.status
        self._show_status()

    def status_text(self) -> str:
        return self.status_action.text()

    def current_icon(self) -> QIcon:
        return dot_icon(self._tone, ICON_SIZE)

    def _show_status(self) -> None:
        text, tone = status_line(self.status, len(self.status.running_jobs), self._last)
        self._tone = tone
        self.status_action.setText(text)
        self.status_action.setIcon(dot_icon(tone))
        if self.icon is not None:
            self.icon.setIcon(self.current_icon())
            self.icon.setToolTip(f"Comet Backup — {text}")

    # ------------------------------------------------------------ back up now

    def backup_actions(self) -> list[QAction]:
        return [a for a in self.backup_menu.actions() if a.data() is not None]

    def _rebuild_backups(self) -> None:
        self.backup_menu.clear()
        profile = self.profile
        mine = (
            [i for i in profile.items if i.owner_device_id == self.status.device_id]
            if profile
            else []
        )
        vaults = profile.vaults if profile else ()
        for item in mine:
            for vault in vaults:
                action = self.backup_menu.addAction(f"“{item.name}” to “{vault.name}”")
                assert action is not None
                action.setData((item.item_id, vault.vault_id))
                action.triggered.connect(
                    lambda _checked=False, i=item.item_id, v=vault.vault_id: self.back_up(i, v)
                )
        if not self.backup_actions():
            empty = self.backup_menu.addAction(
                "Add a Protected Item and a Storage Vault first" if profile else "Loading…"
            )
            if empty is not None:
                empty.setEnabled(False)
        self.backup_menu.setEnabled(True)

    def back_up(self, item_id: str, vault_id: str) -> None:
        self.client.start_backup(item_id, vault_id).then(self._started, self._failed)

    def _started(self, job: Job) -> None:
        self.job_started.emit(job)
        self._notify("Backup started", "Its progress shows on the Backup tab.")

    def _failed(self, error: ApiError) -> None:
        self._notify("The backup did not start", error.message, error=True)

    def _notify(self, title: str, text: str, *, error: bool = False) -> None:
        self.message = f"{title}: {text}"
        if self.icon is not None:
            icons = QSystemTrayIcon.MessageIcon
            self.icon.showMessage(title, text, icons.Warning if error else icons.Information, 5000)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason is QSystemTrayIcon.ActivationReason.Trigger:
            self.open_requested.emit()

    def hide(self) -> None:
        if self.icon is not None:
            self.icon.hide()
