"""The Account dialog's two-factor setup against a real agent and server: the QR code
and secret appear, a code turns 2FA on, a wrong one is refused, and it turns off
again. No device is registered along the way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pytestqt.qtbot import QtBot

from comet.gui.app import AppController
from comet.server.totp import code_at
from tests.fixtures.processes import AdminCli, AgentProcess
from tests.gui.driving import LEFT, SLOW


def alice_row(admin: AdminCli) -> dict[str, Any]:
    rows: list[dict[str, Any]] = admin("user", "list", "--json").json()
    (row,) = [r for r in rows if r["username"] == "alice"]
    return row


def test_account_dialog_turns_two_factor_on_and_off(
    qtbot: QtBot, admin: AdminCli, alice: AgentProcess, controller: AppController
) -> None:
    main = controller.main_window
    assert main is not None
    account = main.account_tab.open_account_dialog()
    qtbot.mouseClick(account.totp, LEFT)
    dialog = main.account_tab.totp_dialog
    assert dialog is not None and dialog.isVisible()

    qtbot.mouseClick(dialog.set_up, LEFT)
    qtbot.waitUntil(lambda: bool(dialog.secret.text()), timeout=SLOW)
    pixmap = dialog.qr.pixmap()
    assert pixmap is not None and not pixmap.isNull() and pixmap.width() > 100
    assert dialog.uri.text().startswith("otpauth://totp/")
    secret = dialog.secret.text()

    dialog.code.setText("000000" if code_at(secret, datetime.now(UTC)) != "000000" else "111111")
    qtbot.mouseClick(dialog.turn_on, LEFT)
    qtbot.waitUntil(dialog.message.isVisible, timeout=SLOW)
    assert "wrong two-factor code" in dialog.message.text()
    assert alice_row(admin)["totp_enabled"] is False

    dialog.code.setText(code_at(secret, datetime.now(UTC)))
    qtbot.mouseClick(dialog.turn_on, LEFT)
    qtbot.waitUntil(lambda: "is on" in dialog.message.text(), timeout=SLOW)
    row = alice_row(admin)
    assert row["totp_enabled"] is True and row["devices"] == 1

    # The code that turned it on is spent (no replay): the next step's code turns it off.
    dialog.code.setText(code_at(secret, datetime.now(UTC) + timedelta(seconds=30)))
    qtbot.mouseClick(dialog.turn_off, LEFT)
    qtbot.waitUntil(lambda: "is off" in dialog.message.text(), timeout=SLOW)
    assert alice_row(admin)["totp_enabled"] is False
    dialog.reject()
    account.reject()
