"""How the GUI tests use the app like a person: click, step through wizards."""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QAbstractItemView, QTreeWidgetItem, QWizard
from pytestqt.qtbot import QtBot

from comet.gui.restore_wizard import LOADING, FilesPage
from tests.fixtures.processes import AgentProcess

LEFT = Qt.MouseButton.LeftButton
SLOW = 60_000  # ms: jobs and wizard pages that call the agent


def double_click_row(qtbot: QtBot, view: QAbstractItemView, row: int) -> None:
    """Qt's views only take a double click on the row the press was on."""
    model = view.model()
    assert model is not None
    rect = view.visualRect(model.index(row, 0))
    viewport = view.viewport()
    assert viewport is not None
    qtbot.mouseClick(viewport, LEFT, pos=rect.center())
    qtbot.mouseDClick(viewport, LEFT, pos=rect.center())


def click_next(qtbot: QtBot, wizard: QWizard) -> None:
    button = wizard.button(QWizard.WizardButton.NextButton)
    assert button is not None
    qtbot.waitUntil(button.isEnabled, timeout=SLOW)
    before = wizard.currentId()
    qtbot.mouseClick(button, LEFT)
    qtbot.waitUntil(lambda: wizard.currentId() != before)


def click_finish(qtbot: QtBot, wizard: QWizard) -> None:
    button = wizard.button(QWizard.WizardButton.FinishButton)
    assert button is not None
    qtbot.waitUntil(button.isEnabled, timeout=SLOW)
    qtbot.mouseClick(button, LEFT)


def unfold_to(qtbot: QtBot, page: FilesPage, path: str) -> QTreeWidgetItem:
    """Unfold the lazy file tree along ``path`` and return its node."""
    parts = [p for p in path.split("/") if p]
    node: QTreeWidgetItem | None = None
    for depth in range(1, len(parts) + 1):
        prefix = "/" + "/".join(parts[:depth])
        qtbot.waitUntil(lambda p=prefix: page.find_node(p) is not None, timeout=SLOW)
        node = page.find_node(prefix)
        assert node is not None
        if depth < len(parts):
            node.setExpanded(True)
            qtbot.waitUntil(
                lambda n=node: n.childCount() == 0 or n.child(0).text(0) != LOADING,
                timeout=SLOW,
            )
    assert node is not None
    return node


def vault_and_item(
    alice: AgentProcess, tmp: Path, *, vault: str = "local-vault", backup: bool = True
) -> Path:
    """Through the CLI: a local vault, an item "docs" of one small file, and (unless told
    otherwise) its first backup. Returns the item's folder."""
    source = tmp / "src"
    source.mkdir()
    (source / "a.txt").write_text("one\n")
    alice.comet("vault", "add", vault, "--type", "local", "--path", str(tmp / "v"))
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    if backup:
        alice.comet("backup", "docs", "--vault", vault, "--wait")
    return source
