"""``AccountTab``: Storage Vaults (add, edit, maintenance under "Advanced"), the
account's devices, the Account and Import buttons, the software version, and the
progress of vault jobs and of restores of items unknown to this device."""

from __future__ import annotations

from PyQt6.QtCore import QModelIndex, QPoint, Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from comet.gui.agent_client import AgentClient, ApiError
from comet.gui.dialogs import AccountDialog, ImportDialog, VaultEditor
from comet.gui.hover_header import HoverHeader
from comet.gui.job_progress import JobProgressPanel
from comet.gui.models import DeviceTableModel, VaultTableModel
from comet.gui.records import (
    AgentStatus,
    Classification,
    Device,
    ImportSource,
    Job,
    Profile,
    StorageVault,
)

VAULT_ACTIONS: tuple[tuple[str, Classification, str], ...] = (
    (
        "Run retention pass now",
        Classification.RETENTION,
        "Forget snapshots the retention rules no longer keep, then remove unused data",
    ),
    (
        "Rebuild indexes",
        Classification.REINDEX,
        "Rebuild the vault's indexes from its packs; safe at any time",
    ),
    ("Deep verify", Classification.DEEP_VERIFY, "Read and decrypt everything in the vault"),
)


def _table(model: VaultTableModel | DeviceTableModel, stretch: int) -> QTableView:
    table = QTableView()
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)  # type: ignore[union-attr]
    header = table.horizontalHeader()
    assert header is not None
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    return table


class AccountTab(QWidget):
    vault_saved = pyqtSignal()
    job_started = pyqtSignal(object)  # Job

    def __init__(self, client: AgentClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.status = AgentStatus()
        self.profile: Profile | None = None
        self.editor: VaultEditor | None = None
        self.account_dialog: AccountDialog | None = None
        self.import_dialog: ImportDialog | None = None

        self.vault_header = HoverHeader("Storage Vaults", "Add a Storage Vault to the account")
        self.vault_header.add_clicked.connect(lambda: self.open_vault_editor(None))
        self.vaults = VaultTableModel(self)
        self.vault_table = _table(self.vaults, VaultTableModel.LOCATION)
        self.vault_table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.vault_table.customContextMenuRequested.connect(self._vault_menu)
        self.vault_table.doubleClicked.connect(self._edit_index)
        self.progress = JobProgressPanel()
        self.progress.cancel_requested.connect(self._cancel)

        devices_title = QLabel("Devices")
        devices_title.setStyleSheet("font-weight: bold; font-size: 14pt")
        self.devices = DeviceTableModel(self)
        self.device_table = _table(self.devices, DeviceTableModel.NAME)
        self.devices_note = QLabel()
        self.devices_note.setWordWrap(True)

        self.account_button = QPushButton("Account")
        self.account_button.setToolTip("Username, server, device and account settings")
        self.account_button.clicked.connect(self.open_account_dialog)
        self.import_button = QPushButton("Import")
        self.import_button.setToolTip("Import settings from other backup products on this device")
        self.import_button.clicked.connect(self.open_import_dialog)
        self.version = QLabel()
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c62828")
        self.message.hide()

        actions = QHBoxLayout()
        actions.addWidget(self.account_button)
        actions.addWidget(self.import_button)
        actions.addStretch(1)
        actions.addWidget(self.version)
        layout = QVBoxLayout(self)
        layout.addWidget(self.vault_header)
        layout.addWidget(self.vault_table, 2)
        layout.addWidget(self.progress)
        layout.addWidget(devices_title)
        layout.addWidget(self.device_table, 1)
        layout.addWidget(self.devices_note)
        layout.addWidget(self.message)
        layout.addLayout(actions)

    # ------------------------------------------------------------ data

    def set_context(self, status: AgentStatus, profile: Profile) -> None:
        self.status = status
        self.profile = profile
        self.vaults.set_rows(profile.vaults)
        self.import_button.setVisible(not profile.hide_import)
        self.version.setVisible(not profile.hide_version)
        self.version.setText(f"Comet Backup {status.version}")

    def refresh_devices(self) -> None:
        self.client.list_devices().then(self._devices_listed, self._devices_failed)

    def _devices_listed(self, devices: list[Device]) -> None:
        self.devices.set_rows(devices)
        self.devices_note.setText("")

    def _devices_failed(self, error: ApiError) -> None:
        # Still list this device, which Status describes.
        self.devices.set_rows(
            [Device(self.status.device_id, self.status.device_name, online=self.status.connected)]
        )
        if error.unimplemented:
            self.devices_note.setText(
                "Only this device is shown: listing the account's devices needs a newer agent."
            )
        else:
            self.devices_note.setText(f"Could not list the devices: {error.message}")

    def device_names(self) -> dict[str, str]:
        return {d.device_id: d.name for d in self.devices.rows()}

    def show_job(self, job: Job, title: str) -> None:
        self.progress.show_job(job, title)

    def show_error(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def selected_vault(self) -> StorageVault | None:
        selection = self.vault_table.selectionModel()
        rows = selection.selectedRows() if selection is not None else []
        return self.vaults.record(rows[0].row()) if rows else None

    # ------------------------------------------------------------ vaults

    def _edit_index(self, index: QModelIndex) -> None:
        vault = self.vaults.record(index.row())
        if vault is not None:
            self.open_vault_editor(vault)

    def _vault_menu(self, pos: QPoint) -> None:
        index = self.vault_table.indexAt(pos)
        vault = self.vaults.record(index.row()) if index.isValid() else None
        if vault is None:
            return
        self.vault_table.selectRow(index.row())
        menu = self.vault_menu(vault)
        viewport = self.vault_table.viewport()
        assert viewport is not None
        menu.exec(viewport.mapToGlobal(pos))

    def vault_menu(self, vault: StorageVault) -> QMenu:
        menu = QMenu(self)
        menu.addAction("Edit", lambda: self.open_vault_editor(vault))
        advanced = menu.addMenu("Advanced")
        assert advanced is not None
        for label, kind, tip in VAULT_ACTIONS:
            action = advanced.addAction(
                label,
                lambda k=kind: self.run_vault_job(vault, k),
            )
            if action is not None:
                action.setToolTip(tip)
        advanced.addAction("Unlock", lambda: self.unlock(vault))
        advanced.setToolTipsVisible(True)
        return menu

    def run_vault_job(self, vault: StorageVault, kind: Classification) -> None:
        self.show_error("")
        self.client.start_vault_job(
            vault.vault_id, kind, read_data=kind is Classification.DEEP_VERIFY
        ).then(
            self.job_started.emit,
            lambda e: self.show_error(f"{kind.label} did not start: {e.message}"),
        )

    def unlock(self, vault: StorageVault, *, confirm: bool = True) -> None:
        if confirm:
            answer = QMessageBox.warning(
                self,
                "Unlock Storage Vault",
                f"Remove the locks on “{vault.name}”?\n\nOnly do this if no job is really "
                "using the vault: unlocking while a backup, restore or retention pass runs "
                "can damage the vault.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.run_vault_job(vault, Classification.UNLOCK)

    def open_vault_editor(self, vault: StorageVault | None) -> VaultEditor:
        editor = VaultEditor(vault, self)
        editor.save_requested.connect(self._save_vault)
        editor.finished.connect(lambda _result: setattr(self, "editor", None))
        self.editor = editor
        editor.open()
        return editor

    def _save_vault(self, vault: StorageVault) -> None:
        editor = self.editor
        pending = self.client.save_vault(vault) if vault.vault_id else self.client.add_vault(vault)

        def saved(_result: object) -> None:
            if editor is not None:
                editor.accept()
            self.vault_saved.emit()

        def failed(error: ApiError) -> None:
            if editor is None:
                return
            if error.unimplemented:
                editor.show_error(
                    "Editing an existing Storage Vault requires a newer agent (this agent "
                    "has no SaveProfile call yet). Nothing was changed."
                )
            else:
                editor.show_error(f"Not saved: {error.message}")

        pending.then(saved, failed)

    def _cancel(self, job_id: str) -> None:
        self.client.cancel_job(job_id).then(
            lambda _job: None, lambda e: self.show_error(f"Could not cancel: {e.message}")
        )

    # ------------------------------------------------------------ dialogs

    def open_account_dialog(self) -> AccountDialog:
        dialog = AccountDialog(self.status, self.profile, self)
        self.account_dialog = dialog
        dialog.open()
        return dialog

    def open_import_dialog(self) -> ImportDialog:
        dialog = ImportDialog(self)
        self.import_dialog = dialog

        def failed(error: ApiError) -> None:
            if error.unimplemented:
                dialog.show_error(
                    "Importing settings from other products needs a newer agent "
                    "(this agent cannot look for them yet)."
                )
            else:
                dialog.show_error(f"Could not look for other products: {error.message}")

        def found(sources: list[ImportSource]) -> None:
            dialog.show_sources(sources)

        self.client.list_import_sources().then(found, failed)
        dialog.open()
        return dialog
