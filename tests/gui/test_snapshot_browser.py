""" "Browse snapshot in file manager": the wizard asks the real agent to mount the
snapshot, hands the folder to the desktop, and unmounts when the wizard closes."""

from __future__ import annotations

import os
from pathlib import Path

from PyQt6.QtCore import QUrl
from pytestqt.qtbot import QtBot

from comet.gui.app import AppController
from tests.fixtures.processes import AgentProcess
from tests.gui.driving import LEFT, SLOW, click_next, vault_and_item


def test_browse_a_snapshot_in_the_file_manager(
    qtbot: QtBot, alice: AgentProcess, controller: AppController, short_tmp: Path
) -> None:
    source = vault_and_item(alice, short_tmp)
    main = controller.main_window
    assert main is not None
    main.refresh()
    qtbot.waitUntil(lambda: main.profile is not None and bool(main.profile.vaults), timeout=SLOW)
    wizard = main.open_restore_wizard()
    assert wizard is not None
    click_next(qtbot, wizard)
    page = wizard.item_page
    qtbot.waitUntil(lambda: page.tree.topLevelItemCount() == 1, timeout=SLOW)
    top = page.tree.topLevelItem(0)
    assert top is not None and top.childCount() == 1
    page.tree.setCurrentItem(top.child(0))
    shown: list[QUrl] = []
    page.browser.open_url = shown.append
    with qtbot.waitSignal(page.browser.opened, timeout=SLOW):
        qtbot.mouseClick(page.browse_button, LEFT)
    assert len(shown) == 1
    folder = Path(shown[0].toLocalFile())
    mountpoint = page.browser.mounts[0]
    assert os.path.ismount(mountpoint) and str(folder).startswith(mountpoint)
    assert (folder / str(source).lstrip("/") / "a.txt").read_text() == "one\n"
    wizard.reject()
    qtbot.waitUntil(lambda: not os.path.exists(mountpoint), timeout=SLOW)
