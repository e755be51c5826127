"""Import a borgmatic config, find a file with the restore wizard's Search and restore
it, then an administrator's policy hides Import, blocks item editing and asks for the
password when the app opens."""

from __future__ import annotations

import json
from pathlib import Path

from pytestqt.qtbot import QtBot

from comet.gui.agent_client import AgentClient
from comet.gui.app import AppController
from comet.gui.main_window import MainWindow
from tests.fixtures.processes import ALICE_PASSWORD, AdminCli, AgentProcess, ServerProcess, wait_for
from tests.gui.driving import LEFT, SLOW, click_finish, click_next


def import_borgmatic(qtbot: QtBot, main: MainWindow) -> None:
    tab = main.account_tab
    main.tabs.setCurrentWidget(tab)
    assert tab.import_button.isVisible()
    qtbot.mouseClick(tab.import_button, LEFT)
    dialog = tab.import_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.model.rowCount() > 0, timeout=SLOW)
    row = next(i for i, s in enumerate(dialog.model.rows()) if s.product == "borgmatic")
    dialog.table.selectRow(row)
    qtbot.mouseClick(dialog.import_button, LEFT)
    qtbot.waitUntil(lambda: "Import finished" in dialog.outcome.text(), timeout=SLOW)
    assert "Success" in dialog.outcome.text() or "Warning" in dialog.outcome.text()
    qtbot.waitUntil(lambda: main.backup_tab.model.rowCount() == 1, timeout=SLOW)
    dialog.reject()


def search_and_restore(
    qtbot: QtBot, main: MainWindow, agent: AgentProcess, data: Path, dest: Path
) -> None:
    item = main.backup_tab.model.record(0)
    assert item is not None and main.profile is not None
    vault = main.profile.vaults[0]
    agent.comet("backup", item.item_id, "--vault", vault.vault_id, "--wait")
    qtbot.mouseClick(main.restore_button, LEFT)
    wizard = main.restore_wizard
    assert wizard is not None
    click_next(qtbot, wizard)
    page = wizard.item_page
    qtbot.waitUntil(lambda: page.tree.topLevelItemCount() == 1, timeout=SLOW)
    search = page.open_search()
    assert search is not None
    search.name.setText("keep*.txt")
    search.search()
    qtbot.waitUntil(lambda: search.model.rowCount() > 0, timeout=SLOW)
    hit = search.model.record(0)
    assert hit is not None and hit.entry.path == str(data / "keep.txt")
    qtbot.mouseClick(search.use_button, LEFT)
    assert page.snapshot() is not None and page.snapshot().snapshot_id == hit.snapshot_id  # type: ignore[union-attr]
    click_next(qtbot, wizard)
    files = wizard.files_page
    qtbot.waitUntil(lambda: files.selected_paths() == (str(data / "keep.txt"),), timeout=SLOW)
    click_next(qtbot, wizard)
    click_next(qtbot, wizard)
    wizard.destination_page.path.setText(str(dest))
    click_next(qtbot, wizard)
    click_finish(qtbot, wizard)
    restored = dest / str(data).lstrip("/") / "keep.txt"
    wait_for(restored.exists, timeout=60, what="restored file")
    assert restored.read_text() == "important\n"
    assert not (dest / str(data).lstrip("/") / "other.txt").exists()


def policy_applies(
    qtbot: QtBot, main: MainWindow, admin: AdminCli, client: AgentClient, root: Path
) -> None:
    policy_file = root / "policy.json"
    flags = {"hide_import": True, "prevent_edit_item": True, "require_password_to_open_app": True}
    policy_file.write_text(json.dumps({"flags": flags}))
    admin("policy", "create", "locked-down", "--file", str(policy_file), "--default")
    main.refresh()
    qtbot.waitUntil(
        lambda: main.profile is not None and main.profile.policy.hide_import, timeout=SLOW
    )
    assert not main.account_tab.import_button.isVisible()
    item = main.backup_tab.model.record(0)
    assert item is not None
    edit = next(a for a in main.backup_tab.item_menu(item).actions() if a.text() == "Edit")
    assert not edit.isEnabled() and "locked-down" in edit.toolTip()

    again = AppController(client)
    again.start()
    qtbot.waitUntil(lambda: again.unlock_dialog is not None, timeout=SLOW)
    prompt = again.unlock_dialog
    assert prompt is not None and again.main_window is None
    prompt.password.setText("wrong-password")
    qtbot.mouseClick(prompt.ok_button, LEFT)
    qtbot.waitUntil(prompt.error.isVisible, timeout=SLOW)
    assert prompt.error.text() == "Wrong password."
    prompt.password.setText(ALICE_PASSWORD)
    qtbot.mouseClick(prompt.ok_button, LEFT)
    qtbot.waitUntil(lambda: again.main_window is not None, timeout=SLOW)
    again.main_window.hide()  # type: ignore[union-attr]


def test_import_search_restore_and_policy(
    qtbot: QtBot, server: ServerProcess, admin: AdminCli, short_tmp: Path
) -> None:
    home, data, repos = short_tmp / "home", short_tmp / "data", short_tmp / "repos"
    for d in (home / ".config" / "borgmatic", data, repos):
        d.mkdir(parents=True)
    (data / "keep.txt").write_text("important\n")
    (data / "other.txt").write_text("not this\n")
    (home / ".config" / "borgmatic" / "config.yaml").write_text(
        f"source_directories:\n    - {data}\nrepositories:\n    - path: {repos}/borg\n"
        "keep_daily: 7\n"
    )
    root = short_tmp / "agent-home"
    root.mkdir()
    agent = AgentProcess(root, env={"HOME": str(home)})
    agent.start()
    client = AgentClient(agent.socket)
    try:
        admin("user", "add", "alice", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
        agent.comet(
            "login",
            "--server",
            server.url,
            "--username",
            "alice",
            "--password-stdin",
            stdin=ALICE_PASSWORD + "\n",
        )
        wait_for(lambda: agent.status()["connected"], what="live connection")
        controller = AppController(client)
        controller.start()
        qtbot.waitUntil(lambda: controller.main_window is not None, timeout=SLOW)
        main = controller.main_window
        assert main is not None
        qtbot.waitUntil(lambda: main.profile is not None, timeout=SLOW)
        import_borgmatic(qtbot, main)
        search_and_restore(qtbot, main, agent, data, short_tmp / "dest")
        policy_applies(qtbot, main, admin, client, short_tmp)
        main.hide()
    finally:
        client.close()
        agent.kill()
