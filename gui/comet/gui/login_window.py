"""``LoginWindow``: username and password, with the server address and device name
under "Advanced settings"; problems are shown inline, never in a traceback.

Over https, a certificate no authority vouches for is trusted only once the person
confirms its SHA-256 fingerprint in a dialog; a certificate that changed since it was
trusted is refused with both fingerprints (re-pinning is an explicit command)."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from enum import Enum

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from comet.gui.agent_client import AgentClient, ApiError
from comet.gui.records import AgentStatus, LoginResult, ServerCertificate
from comet.gui.theme import MARGIN, SECTION, SPACING, Tone, set_tone, tidy

# What deploy/run-local serves; a real deployment types its own https:// address.
DEFAULT_SERVER = "https://127.0.0.1:8060/"
_ADDRESS = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]+)(:\d{1,5})?(/[^\s]*)?$")


class AddressProblem(Enum):
    NONE = ""
    PROTOCOL = "The address must start with http:// or https://"
    MALFORMED = "This is not a server address (expected e.g. https://backup.example.com:8060/)"
    SLASH = "The address must end with a slash (/)"


def check_address(address: str) -> AddressProblem:
    if not address.startswith(("http://", "https://")):
        return AddressProblem.PROTOCOL
    if not _ADDRESS.match(address):
        return AddressProblem.MALFORMED
    if not address.endswith("/"):
        return AddressProblem.SLASH
    return AddressProblem.NONE


CARD_WIDTH = 400


class LoginWindow(QWidget):
    """Emits ``logged_in`` with the agent's answer once the agent is logged in."""

    logged_in = pyqtSignal(object)  # LoginResult

    def __init__(self, client: AgentClient, status: AgentStatus, *, username: str = "") -> None:
        super().__init__()
        self.client = client
        # Asks the person whether to trust a fingerprint (a modal dialog; tests swap it).
        self.confirm_certificate: Callable[[str, str], bool] = self._ask_to_trust
        self.setWindowTitle("Comet Backup — Log in")
        self.setMinimumSize(CARD_WIDTH + 2 * MARGIN, 380)

        title = QLabel("Comet Backup")
        font = QFont(title.font())
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        title.setFont(font)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.username = QLineEdit(username)
        self.username.setPlaceholderText("Username")
        self.password = QLineEdit()
        self.password.setPlaceholderText("Password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.totp_label = QLabel("Two-factor code:")
        self.totp = QLineEdit()
        self.totp.setPlaceholderText("6-digit code from your authenticator app")

        self.advanced = QCheckBox("Advanced settings")
        self.server = QLineEdit(status.server or DEFAULT_SERVER)
        self.server.setToolTip(
            "The Comet Server's address: http:// or https://, any non-default port, "
            "and a trailing slash"
        )
        self.address_problem = QLabel()
        set_tone(self.address_problem, Tone.ERROR)
        self.address_problem.setTextFormat(Qt.TextFormat.RichText)
        self.address_problem.linkActivated.connect(self._fix_address)
        self.device_name = QLineEdit(status.device_name or socket.gethostname())
        self.device_name.setToolTip("How this computer is listed in your account")

        self.login_button = QPushButton("Log in")
        self.login_button.setDefault(True)
        self.login_button.clicked.connect(self.submit)
        self.password.returnPressed.connect(self.submit)
        self.totp.returnPressed.connect(self.submit)
        self.message = QLabel()
        self.message.setWordWrap(True)
        set_tone(self.message, Tone.ERROR)
        self.message.hide()
        self.registered = QLabel()
        self.registered.setWordWrap(True)
        self.registered.hide()

        # One form, so every label and field lines up; a fixed-width card in the middle
        # of the window, whatever its size.
        form = QFormLayout()
        tidy(form)
        form.addRow("Username:", self.username)
        form.addRow("Password:", self.password)
        form.addRow(self.totp_label, self.totp)
        form.addRow("", self.advanced)
        form.addRow("Server:", self.server)
        form.addRow("", self.address_problem)
        form.addRow("Device name:", self.device_name)
        form.addRow(self.message)
        form.addRow(self.registered)
        self._form = form
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.login_button)
        card = QWidget()
        card.setFixedWidth(CARD_WIDTH)
        inner = QVBoxLayout(card)
        tidy(inner)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(title)
        inner.addSpacing(SECTION)
        inner.addLayout(form)
        inner.addSpacing(SPACING)
        inner.addLayout(buttons)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(card)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(MARGIN, MARGIN, MARGIN, MARGIN)
        layout.addStretch(1)
        layout.addLayout(row)
        layout.addStretch(2)
        self.advanced.toggled.connect(self._show_advanced)
        form.setRowVisible(self.totp, False)
        self._show_advanced(False)

        self.server.textChanged.connect(self._validate_address)
        self._validate_address()
        if status.last_error and not status.logged_in:
            self.show_message(f"The agent was logged out: {status.last_error}")
        (self.password if username else self.username).setFocus()

    def _show_advanced(self, shown: bool) -> None:
        for field in (self.server, self.device_name):
            self._form.setRowVisible(field, shown)
        self._validate_address()

    # ------------------------------------------------------------ address

    def _validate_address(self) -> None:
        problem = check_address(self.server.text().strip())
        if problem is not AddressProblem.NONE:
            text = problem.value
            if problem is AddressProblem.SLASH:
                text += ' — <a href="fix-slash">add the missing slash</a>'
            self.address_problem.setText(text)
            # A wrong address is only worth a glance if the user can see the field.
            self.advanced.setChecked(True)
        shown = self.advanced.isChecked() and problem is not AddressProblem.NONE
        self._form.setRowVisible(self.address_problem, shown)
        self.login_button.setEnabled(problem is AddressProblem.NONE)

    def _fix_address(self, link: str) -> None:
        if link == "fix-slash":
            self.server.setText(self.server.text().strip() + "/")

    # ------------------------------------------------------------ logging in

    def submit(self) -> None:
        if not self.login_button.isEnabled():
            return
        if not self.username.text().strip() or not self.password.text():
            self.show_message("Enter your username and password.")
            return
        self.message.hide()
        self.login_button.setEnabled(False)
        self.login_button.setText("Logging in…")
        server = self.server.text().strip()
        if server.startswith("https://"):
            self.client.server_certificate(server).then(self._on_certificate, self._on_failed)
        else:
            self._log_in("")

    def _on_certificate(self, certificate: ServerCertificate) -> None:
        fingerprint = certificate.fingerprint
        if certificate.verified or certificate.pinned_fingerprint == fingerprint:
            self._log_in("")
            return
        if certificate.pinned_fingerprint:
            self._reset_button()
            self.show_message(changed_certificate_text(certificate))
            return
        if not self.confirm_certificate(self.server.text().strip(), fingerprint):
            self._reset_button()
            self.show_message("Not logged in: the server's certificate was not trusted.")
            return
        self._log_in(fingerprint)

    def _log_in(self, trust_fingerprint: str) -> None:
        self.client.login(
            server=self.server.text().strip(),
            username=self.username.text().strip(),
            password=self.password.text(),
            totp_code=self.totp.text().strip() if self.totp.isVisible() else "",
            device_name=self.device_name.text().strip(),
            trust_fingerprint=trust_fingerprint,
        ).then(self._on_logged_in, self._on_failed)

    def _ask_to_trust(self, server: str, fingerprint: str) -> bool:
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Trust this server?")
        box.setText(
            f"The server at {server} presents a certificate that no authority "
            "this computer trusts has signed."
        )
        box.setInformativeText(
            f"SHA-256 fingerprint:\n{fingerprint}\n\nTrust it only if this is the "
            "fingerprint your administrator gave you."
        )
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return box.exec() == QMessageBox.StandardButton.Yes

    def _reset_button(self) -> None:
        self.login_button.setText("Log in")
        self._validate_address()

    def _on_logged_in(self, result: LoginResult) -> None:
        self._reset_button()
        self.password.clear()
        if result.device_registered_now:
            self.registered.setText(registration_text(result.status))
            self.registered.show()
        self.logged_in.emit(result)

    def _on_failed(self, error: ApiError) -> None:
        self._reset_button()
        if error.two_factor_required:
            self._form.setRowVisible(self.totp, True)
            self.totp.setFocus()
            self.show_message("This account needs a two-factor code: enter it and log in again.")
            return
        self.show_message(login_problem(error))

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.show()


def registration_text(status: AgentStatus) -> str:
    return (
        f"This device was registered as “{status.device_name}” in the account "
        f"{status.username} (device id {status.device_id})."
    )


def changed_certificate_text(certificate: ServerCertificate) -> str:
    return (
        "The server's certificate changed since this device trusted it: another server "
        "may be answering at this address, so nothing was sent.\n"
        f"Trusted: {certificate.pinned_fingerprint}\nNow: {certificate.fingerprint}\n"
        "If your administrator confirms the change, trust the new certificate with: "
        f"comet login … --trust-fingerprint {certificate.fingerprint}"
    )


def login_problem(error: ApiError) -> str:
    text = error.message
    lowered = text.lower()
    if "not reachable" in lowered or "connect" in lowered:
        return f"Cannot reach the server: {text}"
    if error.unavailable:
        return text
    if "wrong username or password" in lowered:
        return "Wrong username or password."
    if "two-factor" in lowered:
        return f"{text[:1].upper()}{text[1:]}: try again with a fresh code."
    return f"Could not log in: {text}"
