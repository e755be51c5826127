"""Logging in through the login window: address checks, wrong password, registration."""

from __future__ import annotations

from pathlib import Path

import pytest
from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from comet.agent.transport import certificate_fingerprint
from comet.gui.app import AppController
from comet.gui.login_window import AddressProblem, check_address
from comet.gui.records import ServerCertificate
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import (
    ALICE_PASSWORD,
    AdminCli,
    AgentProcess,
    ServerProcess,
    free_port,
)
from tests.gui.driving import LEFT


def test_address_rules() -> None:
    assert check_address("http://127.0.0.1:8060/") is AddressProblem.NONE
    assert check_address("https://backup.example.com/") is AddressProblem.NONE
    assert check_address("https://backup.example.com") is AddressProblem.SLASH
    assert check_address("backup.example.com/") is AddressProblem.PROTOCOL
    assert check_address("http://bad host/") is AddressProblem.MALFORMED


def test_login_fixes_the_slash_rejects_a_wrong_password_and_registers_the_device(
    qtbot: QtBot,
    server: ServerProcess,
    admin: AdminCli,
    agent: AgentProcess,
    controller: AppController,
) -> None:
    admin("user", "add", "alice", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
    login = controller.login_window
    assert login is not None and controller.main_window is None
    assert login.username.text() == ""
    assert login.device_name.text()  # the host name, under Advanced

    login.advanced.setChecked(True)
    assert login.server.isVisible()
    login.server.setText(server.url.rstrip("/"))
    assert login.address_problem.isVisible()
    assert "slash" in login.address_problem.text()
    assert not login.login_button.isEnabled()
    login.address_problem.linkActivated.emit("fix-slash")  # the clickable fix
    assert login.server.text() == server.url
    assert not login.address_problem.isVisible()
    assert login.login_button.isEnabled()

    login.username.setText("alice")
    login.password.setText("not-her-password")
    login.device_name.setText("gui-laptop")
    qtbot.mouseClick(login.login_button, LEFT)
    qtbot.waitUntil(lambda: login.message.isVisible(), timeout=30_000)
    assert login.message.text() == "Wrong username or password."
    assert "Traceback" not in login.message.text()
    assert controller.main_window is None

    login.password.setText(ALICE_PASSWORD)
    qtbot.mouseClick(login.login_button, LEFT)
    qtbot.waitUntil(lambda: controller.main_window is not None, timeout=30_000)
    main = controller.main_window
    assert main is not None
    assert main.banner.isVisible()
    assert "This device was registered as “gui-laptop”" in main.banner.text()
    status = agent.status()
    assert status["logged_in"] and status["username"] == "alice"
    assert status["device_name"] == "gui-laptop"


def test_unreachable_server_is_reported_inline(
    qtbot: QtBot, agent: AgentProcess, controller: AppController
) -> None:
    login = controller.login_window
    assert login is not None
    login.advanced.setChecked(True)
    login.server.setText("http://127.0.0.1:9/")
    login.username.setText("alice")
    login.password.setText(ALICE_PASSWORD)
    login.submit()
    qtbot.waitUntil(lambda: login.message.isVisible(), timeout=60_000)
    assert "reach" in login.message.text().lower()
    assert controller.main_window is None


def test_a_self_signed_server_is_trusted_only_after_the_fingerprint_is_confirmed(
    qtbot: QtBot,
    postgres_cluster: PostgresCluster,
    short_tmp: Path,
    agent: AgentProcess,
    controller: AppController,
) -> None:
    root = short_tmp / "tls-server"
    root.mkdir()
    server = ServerProcess(
        root, postgres_cluster.fresh_database(), free_port(), extra_args=("--tls",)
    )
    server.add_admin()
    server.start()
    try:
        fingerprint = certificate_fingerprint((root / "tls" / "server.crt").read_bytes())
        admin = AdminCli(short_tmp / "admin.json", server)
        admin.login(extra=("--trust-fingerprint", fingerprint))
        admin("user", "add", "alice", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
        login = controller.login_window
        assert login is not None
        asked: list[tuple[str, str]] = []
        answer = [False]

        def confirm(url: str, shown: str) -> bool:
            asked.append((url, shown))
            return answer[0]

        login.confirm_certificate = confirm
        login.advanced.setChecked(True)
        login.server.setText(server.url)
        login.username.setText("alice")
        login.password.setText(ALICE_PASSWORD)

        login.submit()  # declined: not logged in, nothing trusted
        qtbot.waitUntil(lambda: login.message.isVisible(), timeout=30_000)
        assert asked == [(server.url, fingerprint)]
        assert "not trusted" in login.message.text()
        assert not agent.status()["logged_in"]

        answer[0] = True
        login.submit()
        qtbot.waitUntil(lambda: controller.main_window is not None, timeout=30_000)
        assert asked[-1] == (server.url, fingerprint)
        assert agent.status()["logged_in"]
    finally:
        server.kill()


def test_the_trust_dialog_shows_the_fingerprint_and_defaults_to_no(
    qtbot: QtBot, controller: AppController
) -> None:
    login = controller.login_window
    assert login is not None
    fingerprint = "SHA256:" + ":".join(["AB"] * 32)
    seen: list[str] = []

    def answer(button: QMessageBox.StandardButton) -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        seen.append(box.text() + "\n" + box.informativeText())
        assert box.defaultButton() is box.button(QMessageBox.StandardButton.No)
        clicked = box.button(button)
        assert clicked is not None
        clicked.click()

    QTimer.singleShot(0, lambda: answer(QMessageBox.StandardButton.No))
    assert not login.confirm_certificate("https://backup.example.com/", fingerprint)
    QTimer.singleShot(0, lambda: answer(QMessageBox.StandardButton.Yes))
    assert login.confirm_certificate("https://backup.example.com/", fingerprint)
    assert len(seen) == 2
    assert fingerprint in seen[0] and "https://backup.example.com/" in seen[0]


def test_a_changed_certificate_is_refused_in_the_window_with_both_fingerprints(
    controller: AppController, agent: AgentProcess
) -> None:
    login = controller.login_window
    assert login is not None
    old, new = "SHA256:" + ":".join(["AA"] * 32), "SHA256:" + ":".join(["BB"] * 32)
    login.confirm_certificate = lambda url, fingerprint: pytest.fail("must not ask")
    login.username.setText("alice")
    login.password.setText(ALICE_PASSWORD)
    login._on_certificate(ServerCertificate(secure=True, fingerprint=new, pinned_fingerprint=old))
    text = login.message.text()
    assert old in text and new in text and f"--trust-fingerprint {new}" in text
    assert login.login_button.isEnabled()
    assert not agent.status()["logged_in"]
