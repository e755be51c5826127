"""Keyboard use of every dialog: Tab reaches every field and button, once, in reading
order (top to bottom, left to right), and never gets stuck in a text box."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QAbstractSpinBox, QApplication, QWidget
from pytestqt.qtbot import QtBot

from comet.gui import theme
from comet.gui.account_dialog import AccountDialog, ChangePasswordDialog
from comet.gui.agent_client import AgentClient
from comet.gui.dialogs import ItemEditor, JobLogDialog, VaultEditor
from comet.gui.import_dialog import ImportDialog
from comet.gui.login_window import LoginWindow
from comet.gui.records import AgentStatus, StorageVault, VaultType
from comet.gui.search_dialog import SearchDialog
from comet.gui.totp_dialog import TotpDialog
from comet.gui.unlock_dialog import UnlockDialog

VAULT = StorageVault("v1", "Offsite disk", VaultType.LOCAL)


def tab_cycle(qtbot: QtBot, window: QWidget) -> list[QWidget]:
    """Press Tab until focus comes back where it started; the widgets it stopped on."""
    theme.install(QApplication.instance())  # type: ignore[arg-type]
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None)
    start = QApplication.focusWidget()
    assert start is not None
    seen = [start]
    for _ in range(200):
        current = QApplication.focusWidget()
        assert current is not None
        qtbot.keyClick(current, Qt.Key.Key_Tab)
        widget = QApplication.focusWidget()
        assert widget is not None
        if widget is seen[-1] and isinstance(widget, QAbstractSpinBox):
            continue  # a time edit steps through its sections (hours, minutes) first
        assert widget is not seen[-1], f"Tab is stuck in {widget!r}"
        if widget is start:
            return seen
        assert widget not in seen, f"Tab came back to {widget!r} before {start!r}"
        seen.append(widget)
    raise AssertionError("Tab never came back to where it started")


def reachable(window: QWidget) -> set[QWidget]:
    """Every widget a person can Tab to: shown, enabled, taking focus by Tab."""
    return {
        w
        for w in window.findChildren(QWidget)
        if w.isVisible()
        and w.isEnabled()
        and w.focusPolicy() & Qt.FocusPolicy.TabFocus
        and w.focusProxy() is None
    }


def reading_key(widget: QWidget) -> tuple[int, int]:
    centre = widget.mapToGlobal(widget.rect().center())
    # Widgets of one visual row differ by a few pixels in height: compare in bands.
    return (centre.y() // 12, centre.x())


def check_reading_order(qtbot: QtBot, window: QWidget) -> list[QWidget]:
    cycle = tab_cycle(qtbot, window)
    assert set(cycle) == reachable(window), "some widgets cannot be reached with Tab"
    first = min(cycle, key=reading_key)
    at = cycle.index(first)
    ordered = cycle[at:] + cycle[:at]
    described = [f"{type(w).__name__} {reading_key(w)}" for w in ordered]
    assert ordered == sorted(ordered, key=reading_key), described
    window.hide()
    return ordered


def _client() -> AgentClient:
    return AgentClient(Path("/nonexistent/agent.sock"))  # never called by these dialogs


DIALOGS: dict[str, Callable[[], QWidget]] = {
    "login": lambda: LoginWindow(_client(), AgentStatus(server="https://backup.example/")),
    "change-password": ChangePasswordDialog,
    "unlock": lambda: UnlockDialog("alice"),
    "two-factor": TotpDialog,
    "vault-editor": VaultEditor,
    "item-editor": lambda: ItemEditor(vaults=(VAULT,)),
    "job-log": lambda: JobLogDialog("Backup"),
    "import": ImportDialog,
    "account": lambda: AccountDialog(AgentStatus(username="alice"), None),
    "search": lambda: SearchDialog("Offsite disk", {}),
}


@pytest.mark.parametrize("name", sorted(DIALOGS))
def test_tab_visits_every_field_of_a_dialog_in_reading_order(
    qtbot: QtBot, qapp: QApplication, name: str
) -> None:
    window = DIALOGS[name]()
    qtbot.addWidget(window)
    check_reading_order(qtbot, window)


def test_the_login_form_with_advanced_settings_tabs_through_server_and_device(
    qtbot: QtBot, qapp: QApplication
) -> None:
    login = LoginWindow(_client(), AgentStatus(server="https://backup.example/"))
    qtbot.addWidget(login)
    login.advanced.setChecked(True)
    order = check_reading_order(qtbot, login)
    assert order[:5] == [
        login.username,
        login.password,
        login.advanced,
        login.server,
        login.device_name,
    ]
    assert order[-1] is login.login_button


def test_the_schedule_tab_goes_down_when_then_down_each_run(
    qtbot: QtBot, qapp: QApplication
) -> None:
    """Two columns: every field of "When", then "Each run" and the retention rules."""
    editor = ItemEditor(vaults=(VAULT,))
    qtbot.addWidget(editor)
    editor.tabs.setCurrentIndex(1)
    form = editor.schedule_form
    form.set_daily(2, 0)
    form.retries.setValue(2)
    form.use_window.setChecked(True)
    editor.override.setChecked(True)
    cycle = tab_cycle(qtbot, editor)
    assert set(cycle) == reachable(editor)
    at = cycle.index(editor.plan_vault)
    expected = [
        editor.plan_vault,
        form.frequency,
        form.time,
        *form.days,
        form.use_window,
        form.window_start,
        form.window_end,
        form.random_delay.number,
        form.random_delay.unit,
        form.run_at_boot,
        form.run_at_boot_if_missed,
        form.enabled,
        form.skip_if_running,
        form.stop_after.number,
        form.stop_after.unit,
        form.retries,
        form.retry_delay.number,
        form.retry_delay.unit,
        form.bandwidth.number,
        form.bandwidth.unit,
        form.retention,
        editor.override,
        *editor.retention_form.counts.values(),
        editor.save_button,
    ]
    assert cycle[at : at + len(expected)] == expected
