"""``UnlockDialog``: the password prompt shown when the account's policy requires a
password to open the app while the agent is logged in. The password is checked on the
device by the agent's ``Unlock`` call (no server round trip, no new login)."""

from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from comet.gui.theme import Tone, set_tone


class UnlockDialog(QDialog):
    """Emits ``password_entered``; the owner answers with ``accept`` or ``show_error``."""

    password_entered = pyqtSignal(str)

    def __init__(self, username: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Comet Backup — password required")
        self.setMinimumWidth(380)
        explain = QLabel(
            f"Your administrator requires a password to open the app. Enter the password "
            f"of “{username}”. Backups keep running meanwhile."
        )
        explain.setWordWrap(True)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.error = QLabel()
        set_tone(self.error, Tone.ERROR)
        self.error.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert ok is not None
        ok.setText("Open")
        self.ok_button = ok
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Password:", self.password)
        layout = QVBoxLayout(self)
        layout.addWidget(explain)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

    def _submit(self) -> None:
        if not self.password.text():
            self.show_error("Enter your password.")
            return
        self.error.hide()
        self.ok_button.setEnabled(False)
        self.password_entered.emit(self.password.text())

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()
        self.ok_button.setEnabled(True)
        self.password.selectAll()
