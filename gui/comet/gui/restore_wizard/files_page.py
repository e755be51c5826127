"""Page 3: everything, or chosen files and folders of the snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QButtonGroup,
    QHeaderView,
    QLabel,
    QRadioButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWizardPage,
)

from comet.gui import units
from comet.gui.agent_client import ApiError
from comet.gui.records import SnapshotEntry
from comet.gui.restore_wizard.common import LOADING, RECORD

if TYPE_CHECKING:
    from comet.gui.restore_wizard.wizard import RestoreWizard


class FilesPage(QWizardPage):
    """Everything, or a lazily browsed selection (needs the agent's ListDir)."""

    def __init__(self, wizard: RestoreWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setTitle("Files")
        self.setSubTitle("Select which files to restore.")
        self.all_files = QRadioButton("All files")
        self.choose = QRadioButton("Choose files")
        self.all_files.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.all_files)
        group.addButton(self.choose)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Name", "Size", "Modified"])
        self.tree.setEnabled(False)
        header = self.tree.header()
        assert header is not None
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.itemExpanded.connect(self._expand)
        self.tree.itemChanged.connect(lambda _item, _col: self.completeChanged.emit())
        self.choose.toggled.connect(self.tree.setEnabled)
        self.choose.toggled.connect(self.completeChanged)
        self.state = QLabel()
        self.state.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.all_files)
        layout.addWidget(self.choose)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.state)
        self._snapshot_id = ""
        self.browsable: bool | None = None
        self._reveal = ""  # a path to unfold to and tick once its folders are listed

    def preselect(self, path: str) -> None:
        """Tick ``path`` (from a search) when this page shows the snapshot."""
        self._reveal = path

    def initializePage(self) -> None:
        snapshot = self.owner.item_page.snapshot()
        vault = self.owner.vault_page.vault()
        if snapshot is None or vault is None:
            return
        if snapshot.snapshot_id == self._snapshot_id:
            self._continue_reveal()
            return
        self._snapshot_id = snapshot.snapshot_id
        self.tree.clear()
        self.all_files.setChecked(True)
        self.browsable = None
        self.state.setText(LOADING)
        self.owner.client.list_dir(vault.vault_id, snapshot.snapshot_id, "/").then(
            self._root_listed, self._root_failed
        )

    def _root_listed(self, entries: list[SnapshotEntry]) -> None:
        self.browsable = True
        self.choose.setEnabled(True)
        self.choose.setToolTip("")
        self.state.setText("")
        self._fill(None, entries)
        self._continue_reveal()

    def _continue_reveal(self) -> None:
        """Unfold one more folder towards the preselected path, or tick it."""
        path = self._reveal
        if not path or not self.browsable:
            return
        self.choose.setChecked(True)
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), 0, -1):
            node = self.find_node("/" + "/".join(parts[:depth]))
            if node is None:
                continue
            if depth == len(parts):
                self._reveal = ""
                node.setCheckState(0, Qt.CheckState.Checked)
                self.tree.setCurrentItem(node)
                self.tree.scrollToItem(node)
            elif not node.isExpanded():
                node.setExpanded(True)  # lists it; _continue_reveal runs again then
                return
            else:
                first = node.child(0)
                if first is not None and first.data(0, RECORD) is None:
                    return  # still being listed
            break
        self._reveal = ""
        self.state.setText(f"{path} is not in this snapshot.")

    def _root_failed(self, error: ApiError) -> None:
        self.browsable = False
        if error.unimplemented:
            self.choose.setEnabled(False)
            self.choose.setToolTip(
                "Choosing single files needs a newer agent (no ListDir call yet): "
                "restore all files instead."
            )
            self.state.setText("This agent can only restore whole snapshots.")
        else:
            self.state.setText(f"Could not list the snapshot: {error.message}")

    def _fill(self, parent: QTreeWidgetItem | None, entries: list[SnapshotEntry]) -> None:
        for entry in sorted(entries, key=lambda e: (not e.is_dir, e.name.lower())):
            node = QTreeWidgetItem(
                [
                    entry.name,
                    "" if entry.is_dir else units.size(entry.size),
                    units.when(entry.mtime),
                ]
            )
            node.setData(0, RECORD, entry)
            node.setToolTip(0, entry.path)
            node.setFlags(node.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            node.setCheckState(0, Qt.CheckState.Unchecked)
            if entry.is_dir:
                node.addChild(QTreeWidgetItem([LOADING]))  # placeholder until unfolded
            if parent is None:
                self.tree.addTopLevelItem(node)
            else:
                parent.addChild(node)

    def _expand(self, node: QTreeWidgetItem) -> None:
        first = node.child(0)
        entry = node.data(0, RECORD)
        if (
            first is None
            or first.data(0, RECORD) is not None
            or not isinstance(entry, SnapshotEntry)
        ):
            return
        vault = self.owner.vault_page.vault()
        if vault is None:
            return

        def listed(entries: list[SnapshotEntry]) -> None:
            node.takeChildren()
            self._fill(node, entries)
            if node.checkState(0) == Qt.CheckState.Checked:
                for i in range(node.childCount()):
                    child = node.child(i)
                    if child is not None:
                        child.setCheckState(0, Qt.CheckState.Checked)
            self._continue_reveal()

        def failed(error: ApiError) -> None:
            first.setText(0, f"Could not list: {error.message}")

        self.owner.client.list_dir(vault.vault_id, self._snapshot_id, entry.path).then(
            listed, failed
        )

    def selected_paths(self) -> tuple[str, ...]:
        """Checked entries, without those already covered by a checked folder."""
        if not self.choose.isChecked():
            return ()
        found: list[str] = []

        def walk(node: QTreeWidgetItem) -> None:
            entry = node.data(0, RECORD)
            if not isinstance(entry, SnapshotEntry):
                return
            if node.checkState(0) == Qt.CheckState.Checked:
                found.append(entry.path)
                return
            for i in range(node.childCount()):
                child = node.child(i)
                if child is not None:
                    walk(child)

        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            if top is not None:
                walk(top)
        return tuple(found)

    def find_node(self, path: str) -> QTreeWidgetItem | None:
        """The loaded tree node for a snapshot path (for tests and scripting)."""
        matches = self.tree.findItems(
            path.rstrip("/").rsplit("/", 1)[-1],
            Qt.MatchFlag.MatchExactly | Qt.MatchFlag.MatchRecursive,
        )
        for node in matches:
            entry = node.data(0, RECORD)
            if isinstance(entry, SnapshotEntry) and entry.path == path:
                return node
        return None

    def isComplete(self) -> bool:
        return self.all_files.isChecked() or bool(self.selected_paths())
