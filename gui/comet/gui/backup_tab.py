"""``BackupTab``: this device's Protected Items, their last backup, Backup Now, and the
progress of jobs running for them (backups and restores of known items)."""

from __future__ import annotations

from PyQt6.QtCore import QModelIndex, QPoint, Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from comet.gui.agent_client import AgentClient, ApiError
from comet.gui.backup_wizard import BackupNowWizard
from comet.gui.dialogs import ItemEditor
from comet.gui.job_progress import JobProgressPanel
from comet.gui.models import ItemTableModel
from comet.gui.records import AgentStatus, Job, PolicyFlags, Profile, ProtectedItem, Schedule
from comet.gui.section_header import SectionHeader
from comet.gui.theme import Tone, record_table, set_tone

DELETE_ITEM_NOTE = (
    "Its schedules are removed too. Its snapshots stay in the Storage Vaults and can still "
    "be restored: the Restore wizard lists them under “Show unknown items”."
)


class BackupTab(QWidget):
    item_saved = pyqtSignal()  # the profile changed (or must be reloaded): refresh
    job_started = pyqtSignal(object)  # Job

    def __init__(self, client: AgentClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.profile: Profile | None = None
        self.editor: ItemEditor | None = None
        self.wizard: BackupNowWizard | None = None

        self.header = SectionHeader(
            "Protected Items", "Add Protected Item…", "Add a Protected Item to this device"
        )
        self.header.add_clicked.connect(lambda: self.open_editor(None))
        self.model = ItemTableModel(self)
        self.table = record_table(self.model, [ItemTableModel.STATUS])
        self.table.doubleClicked.connect(self._edit_index)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        selection = self.table.selectionModel()
        assert selection is not None
        selection.selectionChanged.connect(self._update_buttons)

        self.backup_now = QPushButton("Backup Now")
        self.backup_now.setToolTip("Back up the selected Protected Item to a Storage Vault now")
        self.backup_now.clicked.connect(self.open_backup_wizard)
        self.empty = QLabel(
            "No Protected Items on this device yet: click “Add Protected Item…” to choose "
            "what to back up."
        )
        self.empty.setWordWrap(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        set_tone(self.message, Tone.ERROR)
        self.message.hide()
        self.progress = JobProgressPanel()
        self.progress.cancel_requested.connect(self._cancel)

        buttons = QHBoxLayout()
        buttons.addWidget(self.backup_now)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        layout.addWidget(self.progress)
        self._update_buttons()

    # ------------------------------------------------------------ data

    @property
    def policy(self) -> PolicyFlags:
        return self.profile.policy if self.profile else PolicyFlags()

    def set_context(self, status: AgentStatus, profile: Profile) -> None:
        self.profile = profile
        if self.editor is not None:
            self.editor.reloaded(profile.version)
        add = self.header.add_button
        add.setEnabled(not profile.policy.prevent_new_item)
        add.setToolTip(
            profile.policy.reason("adding Protected Items")
            if profile.policy.prevent_new_item
            else "Add a Protected Item to this device"
        )
        mine = [i for i in profile.items if i.owner_device_id == status.device_id]
        selected = self.selected_item()
        self.model.set_rows(mine)
        self.empty.setVisible(not mine)
        if selected is not None:
            self.select_item(selected.item_id)
        elif mine:
            self.table.selectRow(0)
        self._update_buttons()

    def set_history(self, jobs: list[Job]) -> None:
        self.model.set_jobs(jobs)

    def owns(self, item_id: str) -> bool:
        return any(i.item_id == item_id for i in self.model.rows())

    def show_job(self, job: Job, title: str) -> None:
        self.model.update_job(job)
        self.progress.show_job(job, title)

    def selected_item(self) -> ProtectedItem | None:
        selection = self.table.selectionModel()
        rows = selection.selectedRows() if selection is not None else []
        return self.model.record(rows[0].row()) if rows else None

    def select_item(self, item_id: str) -> None:
        for row, item in enumerate(self.model.rows()):
            if item.item_id == item_id:
                self.table.selectRow(row)

    def _update_buttons(self) -> None:
        has_vaults = bool(self.profile and self.profile.vaults)
        self.backup_now.setEnabled(self.selected_item() is not None and has_vaults)

    def show_error(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    # ------------------------------------------------------------ editing

    def _edit_index(self, index: QModelIndex) -> None:
        item = self.model.record(index.row())
        if item is None:
            return
        if self.policy.prevent_edit_item:
            self.show_error(self.policy.reason("editing Protected Items"))
            return
        self.open_editor(item)

    def _context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        item = self.model.record(index.row()) if index.isValid() else None
        if item is None:
            return
        self.table.selectRow(index.row())
        menu = self.item_menu(item)
        viewport = self.table.viewport()
        assert viewport is not None
        menu.exec(viewport.mapToGlobal(pos))

    def item_menu(self, item: ProtectedItem) -> QMenu:
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        policy = self.policy
        edit = menu.addAction("Edit", lambda: self.open_editor(item))
        if edit is not None and policy.prevent_edit_item:
            edit.setEnabled(False)
            edit.setToolTip(policy.reason("editing Protected Items"))
        backup = menu.addAction("Backup Now", self.open_backup_wizard)
        if backup is not None:
            backup.setEnabled(self.backup_now.isEnabled())
        menu.addSeparator()
        delete = menu.addAction("Delete", lambda: self.delete_item(item))
        if delete is not None and policy.prevent_delete_item:
            delete.setEnabled(False)
            delete.setToolTip(policy.reason("deleting Protected Items"))
        return menu

    def delete_item(self, item: ProtectedItem, *, confirm: bool = True) -> None:
        if confirm:
            answer = QMessageBox.question(
                self,
                "Delete Protected Item",
                f"Delete the Protected Item “{item.name}”?\n\n{DELETE_ITEM_NOTE}",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.show_error("")
        version = self.profile.version if self.profile else 0

        def failed(error: ApiError) -> None:
            if error.conflict:
                self.show_error(
                    "Not deleted: the settings were changed elsewhere — reloaded; try again."
                )
                self.item_saved.emit()
            else:
                self.show_error(f"Could not delete “{item.name}”: {error.message}")

        self.client.delete_item(item.item_id, base_version=version).then(
            lambda _profile: self.item_saved.emit(), failed
        )

    def open_editor(self, item: ProtectedItem | None) -> ItemEditor:
        profile = self.profile
        editor = ItemEditor(
            item,
            self,
            vaults=profile.vaults if profile else (),
            schedules=profile.schedules_of(item.item_id) if profile and item else (),
        )
        editor.setProperty("base_version", profile.version if profile else 0)
        editor.save_requested.connect(self._save_item)
        editor.finished.connect(lambda _result: setattr(self, "editor", None))
        self.editor = editor
        editor.open()
        return editor

    def _save_item(self, item: ProtectedItem) -> None:
        editor = self.editor
        schedules: tuple[Schedule, ...] = editor.schedules() if editor is not None else ()
        if item.item_id:
            version = editor.property("base_version") if editor is not None else 0
            pending = self.client.save_item(item, schedules, base_version=int(version or 0))
        else:
            pending = self.client.add_item_with_schedules(item, schedules)

        def saved(_result: object) -> None:
            if editor is not None:
                editor.accept()
            self.item_saved.emit()

        def failed(error: ApiError) -> None:
            if editor is None:
                return
            if error.conflict:
                editor.show_conflict()
                self.item_saved.emit()  # reload
            else:
                editor.show_error(f"Not saved: {error.message}")

        pending.then(saved, failed)

    # ------------------------------------------------------------ jobs

    def open_backup_wizard(self) -> BackupNowWizard | None:
        item = self.selected_item()
        if item is None or self.profile is None:
            return None
        wizard = BackupNowWizard(self.client, item, self.profile.vaults, self)
        wizard.started.connect(self.job_started)
        self.wizard = wizard
        wizard.open()
        return wizard

    def _cancel(self, job_id: str) -> None:
        self.client.cancel_job(job_id).then(
            lambda _job: None, lambda e: self.show_error(f"Could not cancel: {e.message}")
        )
