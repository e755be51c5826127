"""``AccountDialog``: the account's settings (name, emails, language, timezone, what
administrators may do) and ``ChangePasswordDialog``.

Like the editors, neither calls the agent: they emit a request and the owner answers
with ``show_error`` / ``accept``."""

from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from comet.gui.records import AccountSettings, AgentStatus, Profile
from comet.gui.theme import Tone, error_label, set_tone

RESET_WARNING = (
    "Without this, an administrator who resets your password cannot give you back your "
    "data: everything backed up so far becomes unreadable, because only your password "
    "unlocks your Storage Vault keys."
)
EMAIL = "@"


class AccountDialog(QDialog):
    """Read-only facts about this login, and the account settings, saved on Save."""

    save_requested = pyqtSignal(object)  # AccountSettings
    change_password_requested = pyqtSignal()
    totp_requested = pyqtSignal()

    def __init__(
        self, status: AgentStatus, profile: Profile | None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Account")
        self.setMinimumWidth(520)
        self.profile = profile
        settings = profile.settings if profile else AccountSettings()
        policy = profile.policy if profile else None
        form = QFormLayout()
        self.fields: dict[str, QLineEdit] = {}
        for label, value in (
            ("Username", status.username),
            ("Server", status.server),
            ("Device", f"{status.device_name} ({status.device_id})"),
            ("Agent version", status.version),
        ):
            edit = QLineEdit(value)
            edit.setReadOnly(True)
            self.fields[label] = edit
            form.addRow(f"{label}:", edit)
        if policy is not None and policy.hide_version:
            form.setRowVisible(self.fields["Agent version"], False)
        self.account_name = QLineEdit(settings.account_name)
        self.emails = QLineEdit(", ".join(settings.emails))
        self.emails.setPlaceholderText("me@example.com, backup-reports@example.com")
        if policy is not None and policy.prevent_change_email:
            self.emails.setEnabled(False)
            self.emails.setToolTip(policy.reason("changing the email addresses"))
        self.language = QLineEdit(settings.language)
        self.language.setPlaceholderText("e.g. en_US")
        self.timezone = QLineEdit(settings.timezone)
        self.timezone.setPlaceholderText("e.g. Europe/Berlin")
        form.addRow("Account name:", self.account_name)
        form.addRow("Emails:", self.emails)
        form.addRow("Language:", self.language)
        form.addRow("Timezone:", self.timezone)
        self.allow_view = QCheckBox("Allow administrators to view my files")
        self.allow_view.setChecked(settings.allow_admin_view_files)
        self.allow_reset = QCheckBox("Allow administrators to reset my password")
        self.allow_reset.setChecked(settings.allow_admin_reset_password)
        self.reset_warning = QLabel(RESET_WARNING)
        self.reset_warning.setWordWrap(True)
        set_tone(self.reset_warning, Tone.WARNING)
        self.allow_reset.toggled.connect(lambda on: self.reset_warning.setVisible(not on))
        self.reset_warning.setVisible(not settings.allow_admin_reset_password)
        self.change_password = QPushButton("Change password…")
        self.change_password.clicked.connect(self.change_password_requested)
        if policy is not None and policy.prevent_change_password:
            self.change_password.setEnabled(False)
            self.change_password.setToolTip(policy.reason("changing the password"))
        self.totp = QPushButton("Two-factor authentication…")
        self.totp.clicked.connect(self.totp_requested)
        self.error = error_label()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Close
        )
        save = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        assert save is not None
        self.save_button = save
        self.buttons.accepted.connect(self._save)
        self.buttons.rejected.connect(self.reject)
        if profile is None:
            save.setEnabled(False)
            save.setToolTip("Your settings are still loading.")
        # Checkboxes and buttons sit in the field column, under the fields they belong to.
        form.addRow("", self.allow_view)
        form.addRow("", self.allow_reset)
        form.addRow("", self.reset_warning)
        security = QHBoxLayout()
        security.addWidget(self.change_password)
        security.addWidget(self.totp)
        security.addStretch(1)
        form.addRow("Security:", security)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

    def settings(self) -> AccountSettings:
        emails = tuple(e.strip() for e in self.emails.text().split(",") if e.strip())
        return AccountSettings(
            account_name=self.account_name.text().strip(),
            emails=emails,
            language=self.language.text().strip(),
            timezone=self.timezone.text().strip(),
            allow_admin_view_files=self.allow_view.isChecked(),
            allow_admin_reset_password=self.allow_reset.isChecked(),
        )

    def problem(self) -> str:
        bad = [e for e in self.settings().emails if EMAIL not in e or " " in e]
        return f"Not an email address: {bad[0]}" if bad else ""

    def _save(self) -> None:
        problem = self.problem()
        if problem:
            self.show_error(problem)
            return
        self.error.hide()
        self.save_button.setEnabled(False)
        self.save_requested.emit(self.settings())

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()
        self.save_button.setEnabled(True)


class ChangePasswordDialog(QDialog):
    """Current, new and repeated password; emits ``change_requested(current, new)``."""

    change_requested = pyqtSignal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Change password")
        self.setMinimumWidth(420)
        self.current = QLineEdit()
        self.new = QLineEdit()
        self.repeat = QLineEdit()
        for edit in (self.current, self.new, self.repeat):
            edit.setEchoMode(QLineEdit.EchoMode.Password)
        form = QFormLayout()
        form.addRow("Current password:", self.current)
        form.addRow("New password:", self.new)
        form.addRow("Repeat new password:", self.repeat)
        note = QLabel("Your Storage Vault keys are re-wrapped for the new password on this device.")
        note.setWordWrap(True)
        self.error = error_label()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert ok is not None
        ok.setText("Change password")
        self.ok_button = ok
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.error)
        layout.addStretch(1)
        layout.addWidget(self.buttons)

    def problem(self) -> str:
        if not self.current.text():
            return "Enter your current password."
        if len(self.new.text()) < 8:
            return "The new password needs at least 8 characters."
        if self.new.text() != self.repeat.text():
            return "The new password and its repetition differ."
        if self.new.text() == self.current.text():
            return "The new password is the same as the current one."
        return ""

    def _submit(self) -> None:
        problem = self.problem()
        if problem:
            self.show_error(problem)
            return
        self.error.hide()
        self.ok_button.setEnabled(False)
        self.change_requested.emit(self.current.text(), self.new.text())

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()
        self.ok_button.setEnabled(True)


def password_problem(message: str) -> str:
    """A readable sentence for the agent's ChangePassword refusal."""
    text = message.lower()
    if "current password is wrong" in text or "wrong password" in text:
        return "The current password is wrong. Nothing was changed."
    if "at least 8" in text:
        return "The new password needs at least 8 characters."
    return f"The password was not changed: {message}"
