"""Dialogs: the Protected Item editor, the Storage Vault editor and the job log viewer.

Editors never call the agent: Save emits ``save_requested`` with a record, the owner
sends it and then either closes the editor or shows the error in it, so nothing is
applied until Save and a failed save keeps what the user typed.
"""

from __future__ import annotations

import re
from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from comet.gui import units
from comet.gui.models import LogTableModel, RecordFilterProxy
from comet.gui.records import (
    ItemType,
    JobLog,
    LocalVaultSettings,
    LogEntry,
    ProtectedItem,
    Retention,
    S3VaultSettings,
    Schedule,
    Severity,
    SftpVaultSettings,
    StorageVault,
    VaultType,
)
from comet.gui.retention_form import RetentionForm
from comet.gui.schedule_form import ScheduleForm
from comet.gui.theme import (
    MARGIN,
    align_forms,
    error_label,
    fit_stack,
    record_table,
    tab_first,
    tidy,
)


def _lines(edit: QPlainTextEdit) -> tuple[str, ...]:
    return tuple(line.strip() for line in edit.toPlainText().splitlines() if line.strip())


class _Editor(QDialog):
    """Save/Cancel buttons, an inline error line and the saving state."""

    def __init__(self, title: str, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(520)
        self.error = error_label()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        save = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        assert save is not None
        self.save_button = save
        self.buttons.accepted.connect(self._save)
        self.buttons.rejected.connect(self.reject)

    def _save(self) -> None:
        raise NotImplementedError

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()
        self.save_button.setEnabled(True)

    def show_conflict(self) -> None:
        """The profile changed elsewhere: say so; the owner reloads it."""
        self.show_error(
            "Not saved: these settings were changed elsewhere — reload. The latest "
            "settings are being loaded: Save again to apply your edit over them, or Cancel."
        )
        self.setProperty("reload_pending", True)

    def reloaded(self, version: int) -> None:
        """The owner reloaded the profile after a conflict: the next save builds on it."""
        if self.property("reload_pending"):
            self.setProperty("reload_pending", False)
            self.setProperty("base_version", version)

    def set_saving(self) -> None:
        self.error.hide()
        self.save_button.setEnabled(False)


class ItemEditor(_Editor):
    """Edit one Protected Item: Files and Folders or Program Output."""

    save_requested = pyqtSignal(object)  # ProtectedItem

    def __init__(
        self,
        item: ProtectedItem | None = None,
        parent: QWidget | None = None,
        *,
        vaults: tuple[StorageVault, ...] = (),
        schedules: tuple[Schedule, ...] = (),
    ) -> None:
        super().__init__("Edit Protected Item" if item else "New Protected Item", parent)
        self.original = item
        self.vaults = vaults
        # Per vault: the schedule the form edits (the first), extras kept untouched, and
        # the retention override (None = the vault's default applies).
        self._schedules: dict[str, Schedule | None] = {}
        self._extra: list[Schedule] = []
        for s in schedules:
            if s.vault_id in self._schedules:
                self._extra.append(s)
            else:
                self._schedules[s.vault_id] = s
        self._overrides: dict[str, Retention | None] = dict(
            item.retention_overrides if item else ()
        )
        self._shown_vault = ""
        self.name = QLineEdit(item.name if item else "")
        self.name.setPlaceholderText("e.g. Documents")
        self.type = QComboBox()
        self.type.addItem(ItemType.FILES.label, ItemType.FILES)
        self.type.addItem(ItemType.PROGRAM.label, ItemType.PROGRAM)
        self.pages = QStackedWidget()
        self.pages.addWidget(self._files_page(item))
        self.pages.addWidget(self._program_page(item))
        self.type.currentIndexChanged.connect(self.pages.setCurrentIndex)
        if item is not None:
            self.type.setCurrentIndex(0 if item.type is ItemType.FILES else 1)
            self.type.setEnabled(False)  # a snapshot series keeps one type
        form = QFormLayout()
        form.addRow("Name:", self.name)
        form.addRow("Type:", self.type)
        what = QWidget()
        what_layout = QVBoxLayout(what)
        what_layout.addLayout(form)
        what_layout.addWidget(self.pages, 1)
        align_forms(form, *self.pages.findChildren(QFormLayout))
        self.tabs = QTabWidget()
        self.tabs.addTab(what, "What to back up")
        plan = self._plan_page()
        self.tabs.addTab(plan, "Schedule and retention")
        layout = QVBoxLayout(self)
        tidy(layout, margin=MARGIN)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.resize(960, 620)
        # The vault choice is added to the schedule form's rows last; Tab starts on it.
        tab_first(self.plan_vault, plan)

    def _plan_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.plan_vault = QComboBox()
        for vault in self.vaults:
            self.plan_vault.addItem(vault.name, vault.vault_id)
        self.schedule_form = ScheduleForm()
        self.override = QCheckBox("Use its own retention rules for this vault")
        self.override.setToolTip("Unticked: the Storage Vault's default retention applies")
        self.retention_form = RetentionForm()
        self.override.toggled.connect(self.retention_form.setEnabled)
        retention = QGroupBox("Retention")
        retention_layout = QVBoxLayout(retention)
        tidy(retention_layout)
        retention_layout.addWidget(self.override)
        retention_layout.addWidget(self.retention_form)
        self.schedule_form.add_beside(retention)
        self.schedule_form.top.insertRow(0, "Storage Vault:", self.plan_vault)
        layout.addWidget(self.schedule_form)
        layout.addStretch(1)
        if not self.vaults:
            page.setEnabled(False)
            page.setToolTip("Add a Storage Vault first")
        self.plan_vault.currentIndexChanged.connect(self._show_vault_plan)
        self._show_vault_plan()
        return page

    def _keep_vault_plan(self) -> None:
        vault_id = self._shown_vault
        if not vault_id:
            return
        self._schedules[vault_id] = self.schedule_form.schedule(self._item_id(), vault_id)
        self._overrides[vault_id] = (
            self.retention_form.retention() if self.override.isChecked() else None
        )

    def _show_vault_plan(self) -> None:
        self._keep_vault_plan()
        vault_id = self.plan_vault.currentData()
        if not isinstance(vault_id, str):
            return
        self._shown_vault = vault_id
        self.schedule_form.set_schedule(self._schedules.get(vault_id))
        override = self._overrides.get(vault_id)
        vault = next((v for v in self.vaults if v.vault_id == vault_id), None)
        self.override.setChecked(override is not None)
        self.retention_form.set_retention(
            override or (vault.default_retention if vault else Retention())
        )
        self.retention_form.setEnabled(override is not None)

    def select_plan_vault(self, vault_id: str) -> None:
        self.plan_vault.setCurrentIndex(self.plan_vault.findData(vault_id))

    def _item_id(self) -> str:
        return self.original.item_id if self.original else ""

    def schedules(self) -> tuple[Schedule, ...]:
        """Every schedule of the item as edited (one per vault) plus any extras."""
        self._keep_vault_plan()
        edited = tuple(s for s in self._schedules.values() if s is not None)
        return edited + tuple(self._extra)

    def _files_page(self, item: ProtectedItem | None) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.includes = QPlainTextEdit("\n".join(item.includes) if item else "")
        self.includes.setPlaceholderText("One folder or file per line")
        self.add_folder = QPushButton("Add folder…")
        self.add_folder.clicked.connect(self._pick_folder)
        includes = QVBoxLayout()
        includes.addWidget(self.includes)
        includes.addWidget(self.add_folder, 0, Qt.AlignmentFlag.AlignLeft)
        self.exclude_globs = QPlainTextEdit("\n".join(item.exclude_globs) if item else "")
        self.exclude_globs.setPlaceholderText("One glob per line, e.g. *.tmp")
        self.exclude_regexes = QPlainTextEdit("\n".join(item.exclude_regexes) if item else "")
        self.exclude_regexes.setPlaceholderText(r"One regular expression per line, e.g. \.cache/")
        form.addRow("Include:", includes)
        form.addRow("Exclude (globs):", self.exclude_globs)
        form.addRow("Exclude (regexes):", self.exclude_regexes)
        for edit in (self.includes, self.exclude_globs, self.exclude_regexes):
            edit.setTabChangesFocus(True)  # Tab moves to the next field; paths hold no tabs
        return page

    def _program_page(self, item: ProtectedItem | None) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.command = QLineEdit(item.program_command if item else "")
        self.command.setPlaceholderText("e.g. pg_dump mydb")
        self.save_as = QLineEdit(item.program_save_as if item else "")
        self.save_as.setPlaceholderText("e.g. mydb.sql")
        form.addRow("Command:", self.command)
        form.addRow("Save output as:", self.save_as)
        hint = QLabel("The command's standard output is stored as one file.")
        hint.setWordWrap(True)
        form.addRow(hint)
        return page

    def _pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder to back up")
        if folder:
            self.add_include(folder)

    def add_include(self, path: str) -> None:
        current = self.includes.toPlainText().rstrip("\n")
        self.includes.setPlainText(f"{current}\n{path}" if current else path)

    def item(self) -> ProtectedItem:
        kind = ItemType(self.type.currentData())
        base = self.original
        return ProtectedItem(
            item_id=base.item_id if base else "",
            owner_device_id=base.owner_device_id if base else "",
            name=self.name.text().strip(),
            type=kind,
            includes=tuple(str(Path(p).expanduser()) for p in _lines(self.includes))
            if kind is ItemType.FILES
            else (),
            exclude_globs=_lines(self.exclude_globs) if kind is ItemType.FILES else (),
            exclude_regexes=_lines(self.exclude_regexes) if kind is ItemType.FILES else (),
            program_command=self.command.text().strip() if kind is ItemType.PROGRAM else "",
            program_save_as=self.save_as.text().strip() if kind is ItemType.PROGRAM else "",
            retention_overrides=self._retention_overrides(),
        )

    def _retention_overrides(self) -> tuple[tuple[str, Retention], ...]:
        self._keep_vault_plan()
        return tuple((v, r) for v, r in sorted(self._overrides.items()) if r is not None)

    def problem(self) -> str:
        item = self.item()
        if not item.name:
            return "Give the Protected Item a name."
        if item.type is ItemType.FILES:
            if not item.includes:
                return "Add at least one folder or file to back up."
            relative = [p for p in item.includes if not p.startswith("/")]
            if relative:
                return f"Paths must be absolute: {relative[0]}"
            for pattern in item.exclude_regexes:
                try:
                    re.compile(pattern)
                except re.error as e:
                    return f"The exclude regex {pattern!r} is not valid: {e}"
        elif not item.program_command or not item.program_save_as:
            return "Program Output needs a command and a file name to save its output as."
        return self.schedule_form.problem()

    def _save(self) -> None:
        problem = self.problem()
        if problem:
            self.show_error(problem)
            return
        self.set_saving()
        self.save_requested.emit(self.item())


class VaultEditor(_Editor):
    """A new Storage Vault (Local Path, S3-compatible or SFTP), or an existing one's
    name and quota."""

    save_requested = pyqtSignal(object)  # StorageVault

    TYPES = (VaultType.LOCAL, VaultType.S3, VaultType.SFTP)

    def __init__(self, vault: StorageVault | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Edit Storage Vault" if vault else "New Storage Vault", parent)
        self.original = vault
        self.name = QLineEdit(vault.name if vault else "")
        self.name.setPlaceholderText("e.g. USB disk")
        self.type = QComboBox()
        for kind in self.TYPES:
            self.type.addItem(kind.label, kind)
        self.quota = QSpinBox()
        self.quota.setRange(0, 1_000_000)
        self.quota.setSuffix(" GiB")
        self.quota.setSpecialValueText("Unlimited")
        self.quota.setValue(vault.quota_bytes // 2**30 if vault else 0)
        self.pages = QStackedWidget()
        self.pages.addWidget(self._local_page())
        self.pages.addWidget(self._s3_page())
        self.pages.addWidget(self._sftp_page())
        self.type.currentIndexChanged.connect(self.pages.setCurrentIndex)
        fit_stack(self.pages)
        if vault is not None:
            if vault.type in self.TYPES:
                self.type.setCurrentIndex(self.TYPES.index(vault.type))
            self._show_settings(vault)
            self.type.setEnabled(False)
            self.pages.setEnabled(False)
            self.pages.setToolTip("Where a vault stores its data cannot change once it holds data.")
        form = QFormLayout()
        form.addRow("Name:", self.name)
        form.addRow("Type:", self.type)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.pages)
        self.immutable_days = QSpinBox()
        self.immutable_days.setRange(0, 36500)
        self.immutable_days.setSuffix(" days")
        self.immutable_days.setSpecialValueText("Off")
        self.immutable_days.setValue(vault.immutable_days if vault else 0)
        self.immutable_days.setToolTip(
            "Nothing written can be deleted or overwritten for this long, even by someone"
            " with full control of this computer. S3 (bucket with Object Lock) and Comet"
            " Server vaults only."
        )
        self.object_lock_compliance = QCheckBox("Compliance mode (S3)")
        self.object_lock_compliance.setToolTip(
            "S3 Object Lock in compliance mode: not even the bucket's owner can shorten it"
        )
        self.object_lock_compliance.setChecked(bool(vault and vault.object_lock_compliance))
        if vault is not None:  # fixed once the vault holds data
            self.immutable_days.setEnabled(False)
            self.object_lock_compliance.setEnabled(False)
        quota = QFormLayout()
        quota.addRow("Quota:", self.quota)
        quota.addRow("Immutable for:", self.immutable_days)
        quota.addRow("", self.object_lock_compliance)
        layout.addLayout(quota)
        align_forms(form, quota, *self.pages.findChildren(QFormLayout))
        retention = QGroupBox("Default retention (items can override it per vault)")
        self.retention_form = RetentionForm(vault.default_retention if vault else None)
        QVBoxLayout(retention).addWidget(self.retention_form)
        layout.addWidget(retention)
        layout.addStretch(1)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

    def _local_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.local_path = QLineEdit()
        self.local_path.setPlaceholderText("/mnt/backup-disk/comet")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._pick_local)
        row = QHBoxLayout()
        row.addWidget(self.local_path)
        row.addWidget(browse)
        form.addRow("Folder:", row)
        return page

    def _s3_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.s3_endpoint = QLineEdit()
        self.s3_endpoint.setPlaceholderText("https://s3.example.com")
        self.s3_bucket = QLineEdit()
        self.s3_prefix = QLineEdit()
        self.s3_region = QLineEdit()
        self.s3_access_key = QLineEdit()
        self.s3_secret_key = QLineEdit()
        self.s3_secret_key.setEchoMode(QLineEdit.EchoMode.Password)
        form.addRow("Endpoint:", self.s3_endpoint)
        form.addRow("Bucket:", self.s3_bucket)
        form.addRow("Prefix:", self.s3_prefix)
        form.addRow("Region:", self.s3_region)
        form.addRow("Access key:", self.s3_access_key)
        form.addRow("Secret key:", self.s3_secret_key)
        return page

    def _sftp_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.sftp_host = QLineEdit()
        self.sftp_port = QSpinBox()
        self.sftp_port.setRange(1, 65535)
        self.sftp_port.setValue(22)
        self.sftp_user = QLineEdit()
        self.sftp_path = QLineEdit()
        self.sftp_password = QLineEdit()
        self.sftp_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.sftp_key_file = QLineEdit()
        self.sftp_key_file.setPlaceholderText("private key file (instead of a password)")
        self.sftp_host_key = QLineEdit()
        self.sftp_host_key.setPlaceholderText("empty: confirm the server's key on Save")
        self.sftp_host_key.setToolTip(
            "The server's SSH host key the vault pins: SHA256:<fingerprint>, 'type base64'"
            " or a known_hosts line. Left empty, Save shows the key the server presents and"
            " asks you to confirm it."
        )
        form.addRow("Host:", self.sftp_host)
        form.addRow("Port:", self.sftp_port)
        form.addRow("Username:", self.sftp_user)
        form.addRow("Remote folder:", self.sftp_path)
        form.addRow("Password:", self.sftp_password)
        form.addRow("Private key:", self.sftp_key_file)
        form.addRow("Host key:", self.sftp_host_key)
        return page

    def _show_settings(self, vault: StorageVault) -> None:
        s = vault.settings
        if isinstance(s, LocalVaultSettings):
            self.local_path.setText(s.path)
        elif isinstance(s, S3VaultSettings):
            self.s3_endpoint.setText(s.endpoint)
            self.s3_bucket.setText(s.bucket)
            self.s3_prefix.setText(s.prefix)
            self.s3_region.setText(s.region)
            self.s3_access_key.setText(s.access_key)
        elif isinstance(s, SftpVaultSettings):
            self.sftp_host.setText(s.host)
            self.sftp_port.setValue(s.port or 22)
            self.sftp_user.setText(s.username)
            self.sftp_path.setText(s.path)
            self.sftp_host_key.setText(s.host_key)

    def _pick_local(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the vault's folder")
        if folder:
            self.local_path.setText(folder)

    def vault(self) -> StorageVault:
        kind = VaultType(self.type.currentData())
        settings: LocalVaultSettings | S3VaultSettings | SftpVaultSettings
        if kind is VaultType.LOCAL:
            settings = LocalVaultSettings(str(Path(self.local_path.text().strip()).expanduser()))
        elif kind is VaultType.S3:
            settings = S3VaultSettings(
                endpoint=self.s3_endpoint.text().strip(),
                bucket=self.s3_bucket.text().strip(),
                prefix=self.s3_prefix.text().strip(),
                access_key=self.s3_access_key.text().strip(),
                secret_key=self.s3_secret_key.text(),
                region=self.s3_region.text().strip(),
            )
        else:
            key_file = self.sftp_key_file.text().strip()
            settings = SftpVaultSettings(
                host=self.sftp_host.text().strip(),
                port=self.sftp_port.value(),
                username=self.sftp_user.text().strip(),
                path=self.sftp_path.text().strip(),
                password=self.sftp_password.text(),
                private_key=Path(key_file).expanduser().read_text() if key_file else "",
                host_key=self.sftp_host_key.text().strip(),
            )
        return StorageVault(
            vault_id=self.original.vault_id if self.original else "",
            name=self.name.text().strip(),
            type=kind,
            settings=settings,
            quota_bytes=self.quota.value() * 2**30,
            default_retention=self.retention_form.retention(),
            immutable_days=self.immutable_days.value(),
            object_lock_compliance=self.object_lock_compliance.isChecked(),
        )

    def problem(self) -> str:
        if not self.name.text().strip():
            return "Give the Storage Vault a name."
        if self.original is not None:
            return ""
        kind = VaultType(self.type.currentData())
        if self.immutable_days.value() and kind in (VaultType.LOCAL, VaultType.SFTP):
            return (
                f"A {kind.label} vault cannot be immutable: anyone with full control of this"
                " computer (or the SFTP login) can delete its files. Use S3 with Object Lock,"
                " or a Comet Server vault."
            )
        if kind is VaultType.LOCAL and not self.local_path.text().strip().startswith(("/", "~")):
            return "Choose an absolute folder for the vault."
        if kind is VaultType.S3 and not all(
            f.text().strip()
            for f in (self.s3_endpoint, self.s3_bucket, self.s3_access_key, self.s3_secret_key)
        ):
            return "S3 needs an endpoint, a bucket, an access key and a secret key."
        if kind is VaultType.SFTP:
            if not all(f.text().strip() for f in (self.sftp_host, self.sftp_user, self.sftp_path)):
                return "SFTP needs a host, a username and a remote folder."
            if not self.sftp_password.text() and not self.sftp_key_file.text().strip():
                return "SFTP needs a password or a private key file."
        return ""

    def _save(self) -> None:
        problem = self.problem()
        if not problem:
            try:
                vault = self.vault()
            except OSError as e:
                problem = f"Cannot read the private key file: {e.strerror or e}"
        if problem:
            self.show_error(problem)
            return
        self.set_saving()
        self.save_requested.emit(vault)


class JobLogDialog(QDialog):
    """A job's log with a minimum-severity filter and a text search."""

    SEVERITIES = (
        ("Everything", Severity.DEBUG),
        ("Information and above", Severity.INFO),
        ("Warnings and errors", Severity.WARNING),
        ("Errors only", Severity.ERROR),
    )

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Job log — {title}")
        self.resize(820, 480)
        self.summary = QLabel("Loading…")
        self.summary.setWordWrap(True)
        self.severity = QComboBox()
        for label, level in self.SEVERITIES:
            self.severity.addItem(label, level)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search the log")
        self.search.setClearButtonEnabled(True)
        self.model = LogTableModel(self)
        self.proxy = RecordFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = record_table(self.proxy, [LogTableModel.MESSAGE], single=False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.severity.currentIndexChanged.connect(self._refilter)
        self.search.textChanged.connect(self._refilter)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Show:"))
        bar.addWidget(self.severity)
        bar.addWidget(self.search, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)

    def show_log(self, log: JobLog) -> None:
        job = log.job
        text = (
            f"{job.classification.label} — {job.status.label}. Started {units.when(job.started_at)}"
            f", {units.size(job.bytes)} in {job.files} files"
        )
        if job.error_message:
            text += f". {job.error_message}"
        self.summary.setText(text)
        self.model.set_rows(log.entries)

    def show_error(self, message: str) -> None:
        self.summary.setText(message)

    def _refilter(self) -> None:
        level = Severity(self.severity.currentData())
        needle = self.search.text().strip().lower()

        def accepts(entry: LogEntry) -> bool:
            return entry.severity >= level and (not needle or needle in entry.message.lower())

        self.proxy.set_predicate(accepts)

    def visible_messages(self) -> list[str]:
        return [self.proxy.record(row).message for row in range(self.proxy.rowCount())]
