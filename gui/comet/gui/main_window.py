"""``MainWindow``: the Backup, History and Account tabs, the Restore wizard, and the
Close / Lock / Disconnect buttons. Routes job events to the tab that shows them."""

from __future__ import annotations

from dataclasses import replace

from PyQt6.QtCore import QTimer, pyqtSignal
from PyQt6.QtGui import QCloseEvent
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from comet.gui.account_tab import AccountTab
from comet.gui.agent_client import AgentClient, ApiError
from comet.gui.backup_tab import BackupTab
from comet.gui.history_tab import HistoryTab
from comet.gui.models import NameBook
from comet.gui.records import AgentStatus, Classification, Job, JobEvent, Profile
from comet.gui.restore_wizard import RestoreWizard
from comet.gui.theme import Tone, banner_style, set_tone
from comet.gui.tray import TrayMenu

STATUS_POLL_MS = 5000

CLOSE_TIP = (
    "Close the app. The agent stays logged in and scheduled backups keep running; "
    "the app opens on this screen next time."
)
LOCK_TIP = (
    "Log the app out. The agent stays logged in and scheduled backups keep running; "
    "the app opens on the login screen with your username filled in."
)
DISCONNECT_TIP = (
    "Log out the app and the background agent. Scheduled backups stop; the app opens "
    "on the login screen with nothing filled in."
)


class MainWindow(QMainWindow):
    locked = pyqtSignal(str)  # username
    disconnected = pyqtSignal()
    closed = pyqtSignal()

    def __init__(self, client: AgentClient, status: AgentStatus) -> None:
        super().__init__()
        self.client = client
        self.status = status
        self.profile: Profile | None = None
        self.restore_wizard: RestoreWizard | None = None
        self._leaving = False
        self._job_items: dict[str, str] = {}  # job id -> item id, for restores
        self.setWindowTitle(f"Comet Backup — {status.username}")
        self.resize(980, 660)

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(banner_style(error=False))
        self.banner.hide()
        self.connection = QLabel()
        self.restore_button = QPushButton("Restore…")
        self.restore_button.setToolTip("Restore files from a Storage Vault, or delete a snapshot")
        self.restore_button.clicked.connect(self.open_restore_wizard)
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip(CLOSE_TIP)
        self.close_button.clicked.connect(self.close)
        self.lock_button = QPushButton("Lock")
        self.lock_button.setToolTip(LOCK_TIP)
        self.lock_button.clicked.connect(self.lock)
        self.disconnect_button = QPushButton("Disconnect")
        self.disconnect_button.setToolTip(DISCONNECT_TIP)
        self.disconnect_button.clicked.connect(self.disconnect_agent)

        self.backup_tab = BackupTab(client)
        self.history_tab = HistoryTab(client)
        self.account_tab = AccountTab(client)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.backup_tab, "Backup")
        self.tabs.addTab(self.history_tab, "History")
        self.tabs.addTab(self.account_tab, "Account")
        self.tabs.currentChanged.connect(self._tab_changed)

        top = QHBoxLayout()
        top.addWidget(self.restore_button)
        top.addStretch(1)
        top.addWidget(self.connection)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.close_button)
        bottom.addWidget(self.lock_button)
        bottom.addWidget(self.disconnect_button)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addLayout(top)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(bottom)
        self.setCentralWidget(central)

        self.tray = TrayMenu(client, parent=self)
        self.tray.job_started.connect(self.on_job)
        self.tray.open_requested.connect(self.bring_to_front)
        self.tray.quit_requested.connect(self.close)

        self.backup_tab.item_saved.connect(self.refresh)
        self.backup_tab.job_started.connect(self.on_job)
        self.account_tab.vault_saved.connect(self.refresh)
        self.account_tab.job_started.connect(self.on_job)
        client.job_event.connect(self._on_event)
        client.connection_changed.connect(self._on_connection)
        client.status_changed.connect(self._on_status)
        self._poll = QTimer(self)
        self._poll.timeout.connect(lambda: client.status())
        self._poll.start(STATUS_POLL_MS)
        self._on_status(status)
        client.start_watching()
        self.refresh()

    # ------------------------------------------------------------ data

    def refresh(self) -> None:
        """Profile, then names, history and devices."""
        self.client.get_profile(refetch=True).then(self._profile_loaded, self._profile_failed)
        self.account_tab.refresh_devices()

    def _profile_loaded(self, profile: Profile) -> None:
        self.profile = profile
        self.tray.set_profile(profile)
        self.backup_tab.set_context(self.status, profile)
        self.account_tab.set_context(self.status, profile)
        self._update_names()
        self.client.history(all_devices=self.history_tab.filter_pane.isVisible()).then(
            self._history_loaded, lambda e: self.show_banner(f"History: {e.message}", error=True)
        )

    def _profile_failed(self, error: ApiError) -> None:
        self.show_banner(f"Could not load your settings: {error.message}", error=True)

    def _history_loaded(self, jobs: list[Job]) -> None:
        self.history_tab.set_jobs(jobs)
        self.backup_tab.set_history(jobs)
        self.tray.set_history(jobs)
        for job in jobs:
            if job.status.running:
                self.on_job(job)

    def _update_names(self) -> None:
        profile = self.profile
        if profile is None:
            return
        devices = {self.status.device_id: self.status.device_name or "This device"}
        devices.update(self.account_tab.device_names())
        names = NameBook(
            items={i.item_id: i.name for i in profile.items},
            vaults={v.vault_id: v.name for v in profile.vaults},
            devices=devices,
        )
        self.history_tab.set_names(names, self.status.device_id)

    def _on_status(self, status: AgentStatus) -> None:
        if not isinstance(status, AgentStatus):
            return
        self.status = status
        self.tray.set_status(status)
        if status.connected:
            self.connection.setText(f"● Connected to {status.server}")
            set_tone(self.connection, Tone.OK)
        else:
            reason = f" ({status.last_error})" if status.last_error else ""
            self.connection.setText(f"● Not connected to the server{reason}")
            set_tone(self.connection, Tone.WARNING)

    def _on_connection(self, answering: bool) -> None:
        if answering:
            if self.banner.property("agent_down"):
                self.banner.setProperty("agent_down", False)
                self.show_banner("The agent is back.")
            self.refresh()
            self.client.status()
        else:
            self.banner.setProperty("agent_down", True)
            self.show_banner(
                "The Comet agent is not answering; the app reconnects as soon as it is back.",
                error=True,
            )

    def show_banner(self, text: str, *, error: bool = False) -> None:
        self.banner.setStyleSheet(banner_style(error=error))
        self.banner.setText(text)
        self.banner.show()

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.history_tab:
            self.history_tab.refresh()

    # ------------------------------------------------------------ jobs

    def _on_event(self, event: JobEvent) -> None:
        self.on_job(event.job)
        if event.ended and event.job.classification is Classification.BACKUP:
            self.client.status()

    def on_job(self, job: Job) -> None:
        """Show a job under its Protected Item (Backup tab) or its vault (Account tab)."""
        if job.item_id:
            self._job_items[job.job_id] = job.item_id
        elif job.job_id in self._job_items:
            job = replace(job, item_id=self._job_items[job.job_id])
        title = self.job_title(job)
        if job.item_id and self.backup_tab.owns(job.item_id):
            self.backup_tab.show_job(job, title)
        else:
            self.account_tab.show_job(job, title)
        self.history_tab.upsert(job)
        self.tray.on_job(job)

    def job_title(self, job: Job) -> str:
        profile = self.profile
        item = profile.item(job.item_id) if profile else None
        vault = profile.vault(job.vault_id) if profile else None
        item_name = (
            item.name if item else (f"unknown item {job.item_id[:8]}" if job.item_id else "")
        )
        vault_name = vault.name if vault else job.vault_id[:8]
        if job.classification is Classification.BACKUP:
            return f"Backup of “{item_name}” to “{vault_name}”"
        if job.classification is Classification.RESTORE:
            return f"Restore of “{item_name}” from “{vault_name}”"
        return f"{job.classification.label} on “{vault_name}”"

    # ------------------------------------------------------------ restore

    def open_restore_wizard(self) -> RestoreWizard | None:
        if self.profile is None:
            self.show_banner("Your settings are still loading; try again in a moment.")
            return None
        devices = {self.status.device_id: self.status.device_name or "This device"}
        devices.update(self.account_tab.device_names())
        wizard = RestoreWizard(self.client, self.profile, device_names=devices, parent=self)
        wizard.job_started.connect(self.on_job)
        self.restore_wizard = wizard
        wizard.open()
        return wizard

    # ------------------------------------------------------------ leaving

    def lock(self) -> None:
        self.lock_button.setEnabled(False)
        username = self.status.username
        self.client.lock().then(
            lambda _status: self._leave(lambda: self.locked.emit(username)),
            self._leave_failed,
        )

    def disconnect_agent(self) -> None:
        self.disconnect_button.setEnabled(False)
        self.client.disconnect_agent().then(
            lambda _status: self._leave(self.disconnected.emit), self._leave_failed
        )

    def bring_to_front(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def _leave(self, announce: object) -> None:
        self._leaving = True
        self._poll.stop()
        self.tray.hide()
        self.hide()
        if callable(announce):
            announce()
        self.deleteLater()

    def _leave_failed(self, error: ApiError) -> None:
        self.lock_button.setEnabled(True)
        self.disconnect_button.setEnabled(True)
        self.show_banner(error.message, error=True)

    def closeEvent(self, event: QCloseEvent | None) -> None:
        self._poll.stop()
        self.tray.hide()
        if not self._leaving:
            self.closed.emit()
        super().closeEvent(event)
