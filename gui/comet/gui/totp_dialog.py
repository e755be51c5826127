"""``TotpDialog``: two-factor authentication for the account, from the Account dialog.
"Set up" shows a new secret as a QR code (and as text, with its otpauth URI); a code
from the authenticator app turns it on. "Turn off" needs a current code.

Like the other dialogs it never calls the agent: it emits requests and its owner
answers with ``show_enrolment`` / ``show_done`` / ``show_error``."""

from __future__ import annotations

import io

import segno
from PyQt6.QtCore import Qt, pyqtBoundSignal, pyqtSignal
from PyQt6.QtGui import QPixmap
from PyQt6.QtWidgets import (
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

from comet.gui.records import TotpEnrolment
from comet.gui.theme import Tone, set_tone

QR_SCALE = 5


def qr_pixmap(uri: str) -> QPixmap:
    png = io.BytesIO()
    segno.make(uri, error="m").save(png, kind="png", scale=QR_SCALE)
    pixmap = QPixmap()
    pixmap.loadFromData(png.getvalue())
    return pixmap


class TotpDialog(QDialog):
    begin_requested = pyqtSignal()
    confirm_requested = pyqtSignal(str)  # code
    disable_requested = pyqtSignal(str)  # code

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Two-factor authentication")
        self.setMinimumWidth(460)
        intro = QLabel(
            "With two-factor authentication, logging in also needs a 6-digit code from an "
            "authenticator app on your phone."
        )
        intro.setWordWrap(True)
        self.qr = QLabel()
        self.qr.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.qr.hide()
        self.secret = QLineEdit()
        self.secret.setReadOnly(True)
        self.uri = QLineEdit()
        self.uri.setReadOnly(True)
        self.code = QLineEdit()
        self.code.setPlaceholderText("123456")
        self.code.setMaxLength(6)
        form = QFormLayout()
        form.addRow("Secret:", self.secret)
        form.addRow("otpauth URI:", self.uri)
        form.addRow("Code from the app:", self.code)
        self.set_up = QPushButton("Set up…")
        self.set_up.clicked.connect(self._begin)
        self.turn_on = QPushButton("Turn on")
        self.turn_on.setEnabled(False)
        self.turn_on.clicked.connect(lambda: self._with_code(self.confirm_requested))
        self.turn_off = QPushButton("Turn off")
        self.turn_off.clicked.connect(lambda: self._with_code(self.disable_requested))
        buttons = QHBoxLayout()
        for button in (self.set_up, self.turn_on, self.turn_off):
            buttons.addWidget(button)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.hide()
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.qr)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        layout.addWidget(close)

    def _begin(self) -> None:
        self.message.hide()
        self.begin_requested.emit()

    def _with_code(self, signal: pyqtBoundSignal) -> None:
        code = self.code.text().strip()
        if not (len(code) == 6 and code.isdigit()):
            self.show_error("Enter the 6 digits the authenticator app shows.")
            return
        self.message.hide()
        signal.emit(code)

    def show_enrolment(self, enrolment: TotpEnrolment) -> None:
        self.qr.setPixmap(qr_pixmap(enrolment.uri))
        self.qr.show()
        self.secret.setText(enrolment.secret)
        self.uri.setText(enrolment.uri)
        self.turn_on.setEnabled(True)
        self.code.setFocus()

    def show_done(self, message: str) -> None:
        self.code.clear()
        self.turn_on.setEnabled(False)
        self.qr.hide()
        set_tone(self.message, Tone.OK)
        self.message.setText(message)
        self.message.show()

    def show_error(self, message: str) -> None:
        set_tone(self.message, Tone.ERROR)
        self.message.setText(message)
        self.message.show()
