"""``AccountTab``: Storage Vaults (add, edit, maintenance under "Advanced"), the
account's devices, the Account and Import buttons, the software version, and the
progress of vault jobs and of restores of items unknown to this device."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

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

from comet.gui.account_dialog import AccountDialog, ChangePasswordDialog, password_problem
from comet.gui.agent_client import AgentClient, ApiError
from comet.gui.dialogs import VaultEditor
from comet.gui.import_dialog import ImportDialog
from comet.gui.job_progress import JobProgressPanel
from comet.gui.models import DeviceTableModel, VaultTableModel
from comet.gui.records import (
    AccountSettings,
    AgentStatus,
    Classification,
    Device,
    ImportSource,
    Job,
    JobEvent,
    PolicyFlags,
    Profile,
    SftpHostKey,
    SftpVaultSettings,
    StorageVault,
)
from comet.gui.section_header import SectionHeader
from comet.gui.theme import Tone, record_table, set_tone, title_label
from comet.gui.totp_dialog import TotpDialog


def host_key_question(where: str, shown: str) -> str:
    return f"The server at {where} presents key {shown} — is this the server you expect?"


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


class AccountTab(QWidget):
    vault_saved = pyqtSignal()  # the profile changed (or must be reloaded): refresh
    job_started = pyqtSignal(object)  # Job

    def __init__(self, client: AgentClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.status = AgentStatus()
        self.profile: Profile | None = None
        self.editor: VaultEditor | None = None
        # Asks whether to trust an SFTP server's host key (a modal dialog; tests swap it).
        self.confirm_host_key: Callable[[str, str], bool] = self._ask_to_trust_host_key
        self.account_dialog: AccountDialog | None = None
        self.password_dialog: ChangePasswordDialog | None = None
        self.totp_dialog: TotpDialog | None = None
        self.import_dialog: ImportDialog | None = None
        self._import_job = ""
        client.job_event.connect(self._import_event)

        self.vault_header = SectionHeader(
            "Storage Vaults", "Add Storage Vault…", "Add a Storage Vault to the account"
        )
        self.vault_header.add_clicked.connect(lambda: self.open_vault_editor(None))
        self.vaults = VaultTableModel(self)
        self.vault_table = record_table(self.vaults, [VaultTableModel.LOCATION])
        self.vault_table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.vault_table.customContextMenuRequested.connect(self._vault_menu)
        self.vault_table.doubleClicked.connect(self._edit_index)
        self.progress = JobProgressPanel()
        self.progress.cancel_requested.connect(self._cancel)

        devices_title = title_label("Devices")
        self.devices = DeviceTableModel(self)
        self.device_table = record_table(self.devices, [DeviceTableModel.NAME])
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
        set_tone(self.message, Tone.ERROR)
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
        if self.editor is not None:
            self.editor.reloaded(profile.version)
        self.vaults.set_rows(profile.vaults)
        self.import_button.setVisible(not profile.policy.hide_import)
        self.version.setVisible(not profile.policy.hide_version)
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
        if vault is not None and self._edit_allowed():
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

    @property
    def policy(self) -> PolicyFlags:
        return self.profile.policy if self.profile else PolicyFlags()

    def _edit_allowed(self) -> bool:
        if self.policy.prevent_edit_vault:
            self.show_error(self.policy.reason("editing Storage Vaults"))
            return False
        return True

    def vault_menu(self, vault: StorageVault) -> QMenu:
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        policy = self.policy
        edit = menu.addAction("Edit", lambda: self.open_vault_editor(vault))
        if edit is not None and policy.prevent_edit_vault:
            edit.setEnabled(False)
            edit.setToolTip(policy.reason("editing Storage Vaults"))
        delete = menu.addAction("Delete", lambda: self.delete_vault(vault))
        if delete is not None and policy.prevent_delete_vault:
            delete.setEnabled(False)
            delete.setToolTip(policy.reason("deleting Storage Vaults"))
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

    def delete_vault(self, vault: StorageVault, *, confirm: bool = True) -> None:
        if confirm:
            answer = QMessageBox.question(
                self,
                "Delete Storage Vault",
                f"Remove the Storage Vault “{vault.name}” from your account?\n\n"
                "Its schedules go with it. The data stored at its location is not "
                "deleted, but the app no longer backs up to it or restores from it.",
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
                self.vault_saved.emit()
            else:
                self.show_error(f"Could not delete “{vault.name}”: {error.message}")

        self.client.delete_vault(vault.vault_id, base_version=version).then(
            lambda _profile: self.vault_saved.emit(), failed
        )

    def open_vault_editor(self, vault: StorageVault | None) -> VaultEditor:
        editor = VaultEditor(vault, self)
        editor.setProperty("base_version", self.profile.version if self.profile else 0)
        editor.save_requested.connect(self._save_vault)
        editor.finished.connect(lambda _result: setattr(self, "editor", None))
        self.editor = editor
        editor.open()
        return editor

    def _save_vault(self, vault: StorageVault) -> None:
        if not vault.vault_id and isinstance(vault.settings, SftpVaultSettings):
            self._pin_host_key(vault, vault.settings)
        else:
            self._send_vault(vault)

    def _pin_host_key(self, vault: StorageVault, settings: SftpVaultSettings) -> None:
        """A new SFTP vault pins the key its server presents: the one typed in the editor
        if it is that one, else only once the person confirms its fingerprint."""
        editor = self.editor
        where = f"{settings.host}:{settings.port}"

        def presented(key: SftpHostKey) -> None:
            if editor is None or self.editor is not editor:  # the editor was closed
                return
            shown = f"{key.fingerprint} ({key.key_type})"
            if settings.host_key and not key.matches:
                editor.show_error(
                    f"Not saved: the server at {where} presents key {shown}, not the host"
                    " key entered. If the server's key was replaced, check the new one with"
                    " its administrator."
                )
            elif not settings.host_key and not self.confirm_host_key(where, shown):
                editor.show_error("Not saved: the server's host key was not confirmed.")
            else:
                pinned = dataclasses.replace(settings, host_key=key.host_key)
                self._send_vault(dataclasses.replace(vault, settings=pinned))

        def failed(error: ApiError) -> None:
            if editor is not None:
                editor.show_error(f"Not saved: {error.message}")

        self.client.sftp_host_key(settings.host, settings.port, expected=settings.host_key).then(
            presented, failed
        )

    def _ask_to_trust_host_key(self, where: str, shown: str) -> bool:
        box = QMessageBox(self.editor or self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Trust this SFTP server?")
        box.setText(host_key_question(where, shown))
        box.setInformativeText(
            "Compare it with the fingerprint your server's administrator gives you"
            " (ssh-keygen -lf on the server's key). The vault will only connect to a"
            " server presenting this key."
        )
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return box.exec() == QMessageBox.StandardButton.Yes

    def _send_vault(self, vault: StorageVault) -> None:
        editor = self.editor
        if vault.vault_id:
            version = editor.property("base_version") if editor is not None else 0
            pending = self.client.save_vault(vault, base_version=int(version or 0))
        else:
            pending = self.client.add_vault(vault)

        def saved(_result: object) -> None:
            if editor is not None:
                editor.accept()
            self.vault_saved.emit()

        def failed(error: ApiError) -> None:
            if editor is None:
                return
            if error.conflict:
                editor.show_conflict()
                self.vault_saved.emit()  # reload
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
        dialog.save_requested.connect(self._save_settings)
        dialog.change_password_requested.connect(self.open_password_dialog)
        dialog.totp_requested.connect(self.open_totp_dialog)
        self.account_dialog = dialog
        dialog.open()
        return dialog

    def _save_settings(self, settings: AccountSettings) -> None:
        dialog = self.account_dialog
        version = self.profile.version if self.profile else 0

        def failed(error: ApiError) -> None:
            if dialog is None:
                return
            if error.conflict:
                dialog.show_error(
                    "Not saved: your settings were changed elsewhere — reload. Close this "
                    "dialog and open it again to see the latest settings."
                )
                self.vault_saved.emit()
            else:
                dialog.show_error(f"Not saved: {error.message}")

        def saved(_profile: object) -> None:
            if dialog is not None:
                dialog.accept()
            self.vault_saved.emit()

        self.client.save_settings(settings, base_version=version).then(saved, failed)

    def open_password_dialog(self) -> ChangePasswordDialog:
        parent = self.account_dialog if self.account_dialog is not None else self
        dialog = ChangePasswordDialog(parent)
        self.password_dialog = dialog

        def change(current: str, new: str) -> None:
            self.client.change_password(current, new).then(
                lambda _status: dialog.accept(),
                lambda e: dialog.show_error(password_problem(e.message)),
            )

        dialog.change_requested.connect(change)
        dialog.open()
        return dialog

    def open_totp_dialog(self) -> TotpDialog:
        parent = self.account_dialog if self.account_dialog is not None else self
        dialog = TotpDialog(parent)
        self.totp_dialog = dialog
        client = self.client

        def failed(error: ApiError) -> None:
            dialog.show_error(error.message)

        dialog.begin_requested.connect(
            lambda: client.begin_totp().then(dialog.show_enrolment, failed)
        )
        dialog.confirm_requested.connect(
            lambda code: client.confirm_totp(code).then(
                lambda _s: dialog.show_done("Two-factor authentication is on."), failed
            )
        )
        dialog.disable_requested.connect(
            lambda code: client.disable_totp(code).then(
                lambda _s: dialog.show_done("Two-factor authentication is off."), failed
            )
        )
        dialog.open()
        return dialog

    def open_import_dialog(self) -> ImportDialog:
        dialog = ImportDialog(self)
        self.import_dialog = dialog

        def found(sources: list[ImportSource]) -> None:
            dialog.show_sources(sources)

        def failed(error: ApiError) -> None:
            dialog.show_error(f"Could not look for other products: {error.message}")

        def start(source: ImportSource) -> None:
            self.client.start_import(source.source_id).then(self._import_started, failed_start)

        def failed_start(error: ApiError) -> None:
            dialog.show_error(f"The import did not start: {error.message}")

        dialog.import_requested.connect(start)
        self.client.list_import_sources().then(found, failed)
        dialog.open()
        return dialog

    def _import_started(self, job: Job) -> None:
        self._import_job = job.job_id
        self.job_started.emit(job)
        self._import_progress(job)

    def _import_event(self, event: JobEvent) -> None:
        if event.job.job_id == self._import_job:
            self._import_progress(event.job)

    def _import_progress(self, job: Job) -> None:
        dialog = self.import_dialog
        if job.status.running or job.status.value == 0:
            if dialog is not None:
                dialog.show_running(job)
            return
        self._import_job = ""
        if dialog is not None:
            dialog.show_result(job)
        self.vault_saved.emit()  # the import added items, vaults and schedules
