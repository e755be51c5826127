"""Editing the profile through SaveProfile: an item (paths, schedule, retention), a
stale save that must be reloaded, deleting an item and a vault, the vault's default
retention, the account settings and the password."""

from __future__ import annotations

from pathlib import Path

import pytest
from PyQt6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from comet.gui.app import AppController
from comet.gui.main_window import MainWindow
from comet.gui.records import Frequency, Profile, RetentionKind
from tests.fixtures.processes import ALICE_PASSWORD, AgentProcess, ServerProcess
from tests.gui.driving import LEFT, SLOW, double_click_row

NEW_PASSWORD = "alice-password-2"


def _answer_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(QMessageBox, "question", lambda *_a, **_k: QMessageBox.StandardButton.Yes)


def _action(menu: object, text: str) -> object:
    return next(a for a in menu.actions() if a.text() == text)  # type: ignore[attr-defined]


def settle_profile(qtbot: QtBot, main: MainWindow) -> None:
    """Wait until the tabs show the latest profile (refreshes may still be in flight)."""
    box: list[Profile] = []
    main.client.get_profile().then(box.append)
    qtbot.waitUntil(lambda: bool(box), timeout=SLOW)
    latest = box[0].version
    qtbot.waitUntil(lambda: main.profile is not None and main.profile.version == latest)


def edit_item_paths_schedule_and_retention(
    qtbot: QtBot, main: MainWindow, alice: AgentProcess, extra: Path, vault_id: str
) -> None:
    double_click_row(qtbot, main.backup_tab.table, 0)
    editor = main.backup_tab.editor
    assert editor is not None
    editor.add_include(str(extra))
    editor.tabs.setCurrentIndex(1)
    editor.select_plan_vault(vault_id)
    editor.schedule_form.set_daily(3, 15)
    editor.schedule_form.skip_if_running.setChecked(True)
    editor.override.setChecked(True)
    editor.retention_form.counts[RetentionKind.KEEP_LAST].setValue(5)
    qtbot.mouseClick(editor.save_button, LEFT)
    qtbot.waitUntil(lambda: main.backup_tab.editor is None, timeout=SLOW)
    items = alice.comet("item", "list", "--json").json()
    assert str(extra) in items[0]["includes"]
    qtbot.waitUntil(lambda: main.profile is not None and bool(main.profile.schedules), timeout=SLOW)
    assert main.profile is not None
    schedule = main.profile.schedules[0]
    assert (schedule.frequency, schedule.hour, schedule.minute) == (Frequency.DAILY, 3, 15)
    assert schedule.skip_if_running and schedule.vault_id == vault_id
    override = main.profile.items[0].retention_for(vault_id)
    assert override is not None and override.count(RetentionKind.KEEP_LAST) == 5


def stale_save_shows_reload(qtbot: QtBot, main: MainWindow, alice: AgentProcess) -> None:
    double_click_row(qtbot, main.backup_tab.table, 0)
    editor = main.backup_tab.editor
    assert editor is not None
    alice.comet("item", "add", "elsewhere", "--type", "files", "--include", "/etc")
    editor.name.setText("docs renamed")
    qtbot.mouseClick(editor.save_button, LEFT)
    qtbot.waitUntil(editor.error.isVisible, timeout=SLOW)
    assert "changed elsewhere — reload" in editor.error.text()
    # Reloaded: a second Save applies the edit over the latest settings.
    qtbot.waitUntil(lambda: not editor.property("reload_pending"), timeout=SLOW)
    qtbot.mouseClick(editor.save_button, LEFT)
    qtbot.waitUntil(lambda: main.backup_tab.editor is None, timeout=SLOW)
    names = {i["name"] for i in alice.comet("item", "list", "--json").json()}
    assert names == {"docs renamed", "elsewhere"}, alice.comet("item", "list", "--json").stdout


def delete_an_item(
    qtbot: QtBot, main: MainWindow, alice: AgentProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    tab = main.backup_tab
    main.refresh()
    qtbot.waitUntil(lambda: tab.model.rowCount() == 2, timeout=SLOW)
    doomed = next(i for i in tab.model.rows() if i.name == "elsewhere")
    settle_profile(qtbot, main)
    _answer_yes(monkeypatch)
    _action(tab.item_menu(doomed), "Delete").trigger()  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: tab.model.rowCount() == 1 or tab.message.isVisible(), timeout=SLOW)
    assert tab.model.rowCount() == 1, tab.message.text()
    names = [i["name"] for i in alice.comet("item", "list", "--json").json()]
    assert names == ["docs renamed"]


def vault_retention_and_delete(
    qtbot: QtBot,
    main: MainWindow,
    alice: AgentProcess,
    monkeypatch: pytest.MonkeyPatch,
    spare_dir: Path,
) -> None:
    tab = main.account_tab
    main.tabs.setCurrentWidget(tab)
    double_click_row(qtbot, tab.vault_table, 0)
    editor = tab.editor
    assert editor is not None
    editor.retention_form.counts[RetentionKind.ONE_PER_DAY].setValue(7)
    qtbot.mouseClick(editor.save_button, LEFT)
    qtbot.waitUntil(lambda: tab.editor is None, timeout=SLOW)
    qtbot.waitUntil(
        lambda: (
            main.profile is not None
            and main.profile.vaults[0].default_retention.count(RetentionKind.ONE_PER_DAY) == 7
        ),
        timeout=SLOW,
    )
    spare = alice.comet("vault", "add", "spare", "--type", "local", "--path", str(spare_dir)).stdout
    main.refresh()
    qtbot.waitUntil(lambda: tab.vaults.rowCount() == 2, timeout=SLOW)
    settle_profile(qtbot, main)
    vault = next(v for v in tab.vaults.rows() if v.name == "spare")
    _answer_yes(monkeypatch)
    _action(tab.vault_menu(vault), "Delete").trigger()  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: tab.vaults.rowCount() == 1, timeout=SLOW)
    assert spare.strip() not in alice.comet("vault", "list").stdout


def account_settings_and_password(
    qtbot: QtBot, main: MainWindow, alice: AgentProcess, server: ServerProcess
) -> None:
    tab = main.account_tab
    dialog = tab.open_account_dialog()
    assert dialog.reset_warning.isVisible() == (not dialog.allow_reset.isChecked())
    dialog.account_name.setText("Alice Example")
    dialog.emails.setText("alice@example.com, reports@example.com")
    dialog.language.setText("en_GB")
    dialog.timezone.setText("Europe/London")
    dialog.allow_view.setChecked(True)
    dialog.allow_reset.setChecked(True)
    assert not dialog.reset_warning.isVisible()
    qtbot.mouseClick(dialog.save_button, LEFT)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=SLOW)
    qtbot.waitUntil(
        lambda: main.profile is not None and main.profile.settings.account_name == "Alice Example",
        timeout=SLOW,
    )
    settings = main.profile.settings  # type: ignore[union-attr]
    assert settings.emails == ("alice@example.com", "reports@example.com")
    assert (settings.language, settings.timezone) == ("en_GB", "Europe/London")
    assert settings.allow_admin_view_files and settings.allow_admin_reset_password

    again = tab.open_account_dialog()
    password = tab.open_password_dialog()
    password.current.setText("not-the-password")
    password.new.setText(NEW_PASSWORD)
    password.repeat.setText(NEW_PASSWORD)
    qtbot.mouseClick(password.ok_button, LEFT)
    qtbot.waitUntil(password.error.isVisible, timeout=SLOW)
    assert password.error.text() == "The current password is wrong. Nothing was changed."
    password.current.setText(ALICE_PASSWORD)
    qtbot.mouseClick(password.ok_button, LEFT)
    qtbot.waitUntil(lambda: not password.isVisible(), timeout=SLOW)
    again.reject()
    alice.comet(
        "login",
        "--server",
        server.url,
        "--username",
        "alice",
        "--password-stdin",
        stdin=NEW_PASSWORD + "\n",
    )
    assert alice.status()["logged_in"]


def test_edit_and_delete_items_and_vaults_and_account_settings(
    qtbot: QtBot,
    server: ServerProcess,
    alice: AgentProcess,
    controller: AppController,
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, extra = short_tmp / "src", short_tmp / "more"
    source.mkdir()
    extra.mkdir()
    vault_id = alice.comet(
        "vault", "add", "local-vault", "--type", "local", "--path", str(short_tmp / "v")
    ).stdout.strip()
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    main = controller.main_window
    assert main is not None
    main.refresh()
    qtbot.waitUntil(lambda: main.backup_tab.model.rowCount() == 1, timeout=SLOW)
    edit_item_paths_schedule_and_retention(qtbot, main, alice, extra, vault_id)
    stale_save_shows_reload(qtbot, main, alice)
    delete_an_item(qtbot, main, alice, monkeypatch)
    vault_retention_and_delete(qtbot, main, alice, monkeypatch, short_tmp / "spare")
    account_settings_and_password(qtbot, main, alice, server)
