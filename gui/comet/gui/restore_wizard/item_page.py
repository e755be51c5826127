"""Page 2: which Protected Item and snapshot (and deleting snapshots)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtCore import QPoint, Qt
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWizardPage,
)

from comet.gui import units
from comet.gui.agent_client import ApiError
from comet.gui.records import (
    Classification,
    FindQuery,
    FoundEntry,
    Job,
    Snapshot,
)
from comet.gui.restore_wizard.common import LOADING, RECORD
from comet.gui.search_dialog import SearchDialog
from comet.gui.snapshot_browser import SnapshotBrowser
from comet.gui.theme import Tone, set_tone

if TYPE_CHECKING:
    from comet.gui.restore_wizard.wizard import RestoreWizard


class ItemPage(QWizardPage):
    """Protected Items of the vault, each unfolding to its snapshots (newest first)."""

    def __init__(self, wizard: RestoreWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setTitle("Protected Item")
        self.setSubTitle(
            "Select the Protected Item to restore; unfold it to pick an older snapshot."
        )
        self.other_devices = QCheckBox("Show items from other devices")
        self.unknown = QCheckBox("Show unknown items")
        self.unknown.setToolTip("Snapshots of Protected Items that were deleted from the account")
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.search_button = QPushButton("Search…")
        self.search_button.setToolTip(
            "Find files by name, size or date across the listed snapshots of this vault"
        )
        self.search_button.clicked.connect(self.open_search)
        self.search_dialog: SearchDialog | None = None
        self.browse_button = QPushButton("Browse in file manager")
        self.browse_button.setToolTip(
            "Open the selected snapshot read-only in the file manager, to copy files back"
        )
        self.browse_button.clicked.connect(lambda: self.browse_snapshot())
        self.browser = SnapshotBrowser(wizard.client, parent=self)
        self.other_devices.toggled.connect(self.refresh)
        self.unknown.toggled.connect(self.refresh)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Protected Item / snapshot", "Device", "Files", "Size"])
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.itemSelectionChanged.connect(self.completeChanged)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        header = self.tree.header()
        assert header is not None
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.state = QLabel()
        self.state.setWordWrap(True)
        self.browser.failed.connect(self.state.setText)
        self.browser.opened.connect(
            lambda folder: self.state.setText(
                f"The snapshot is open read-only at {folder} until this window closes."
            )
        )
        bar = QHBoxLayout()
        bar.addWidget(self.other_devices)
        bar.addWidget(self.unknown)
        bar.addStretch(1)
        bar.addWidget(self.browse_button)
        bar.addWidget(self.search_button)
        bar.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.state)
        self._generation = 0
        self._loaded_vault = ""
        self.loading = False

    def initializePage(self) -> None:
        vault = self.owner.vault_page.vault()
        if vault is not None and vault.vault_id != self._loaded_vault:
            self.refresh()

    def refresh(self) -> None:
        vault = self.owner.vault_page.vault()
        if vault is None:
            return
        self._loaded_vault = vault.vault_id
        self._generation += 1
        generation = self._generation
        self.loading = True
        self.tree.clear()
        self.state.setText(LOADING)
        self.completeChanged.emit()
        client = self.owner.client
        collected: list[Snapshot] = []
        wanted = 2 if self.unknown.isChecked() else 1
        answers: list[int] = []

        def got(snapshots: list[Snapshot]) -> None:
            if generation != self._generation:
                return
            collected.extend(snapshots)
            answers.append(1)
            if len(answers) == wanted:
                self._show(collected)

        def failed(error: ApiError) -> None:
            if generation != self._generation:
                return
            self.loading = False
            self.state.setText(f"Could not list snapshots: {error.message}")
            set_tone(self.state, Tone.ERROR)

        client.list_snapshots(vault.vault_id, all_devices=self.other_devices.isChecked()).then(
            got, failed
        )
        if self.unknown.isChecked():
            client.list_snapshots(vault.vault_id, unknown_items=True).then(got, failed)

    def _show(self, snapshots: list[Snapshot]) -> None:
        self.loading = False
        set_tone(self.state, None)
        unique = {s.snapshot_id: s for s in snapshots}
        groups: dict[str, list[Snapshot]] = {}
        for snapshot in unique.values():
            groups.setdefault(snapshot.item_id, []).append(snapshot)
        self.tree.clear()
        devices = self.owner.device_names
        for item_id, group in sorted(groups.items(), key=lambda kv: self._label(kv[1][0])):
            group.sort(key=lambda s: s.time.timestamp() if s.time else 0.0, reverse=True)
            newest = group[0]
            top = QTreeWidgetItem(
                [
                    self._label(newest),
                    devices.get(newest.device_id, newest.device_id[:8]),
                    str(newest.files),
                    units.size(newest.bytes),
                ]
            )
            top.setData(0, RECORD, newest)
            top.setToolTip(0, f"Newest snapshot: {units.when(newest.time)} ({item_id})")
            for snapshot in group:
                child = QTreeWidgetItem(
                    [
                        units.when(snapshot.time),
                        devices.get(snapshot.device_id, snapshot.device_id[:8]),
                        str(snapshot.files),
                        units.size(snapshot.bytes),
                    ]
                )
                child.setData(0, RECORD, snapshot)
                child.setToolTip(0, f"Snapshot {snapshot.snapshot_id}")
                top.addChild(child)
            self.tree.addTopLevelItem(top)
        if groups:
            self.state.setText(
                f"{len(unique)} snapshots of {len(groups)} Protected Items. "
                "Right-click a snapshot to delete it."
            )
            first = self.tree.topLevelItem(0)
            if first is not None:
                self.tree.setCurrentItem(first)
        else:
            self.state.setText(
                "No snapshots here. Tick “Show items from other devices” or “Show unknown items”"
                " to see more."
            )
        self.completeChanged.emit()

    @staticmethod
    def _label(snapshot: Snapshot) -> str:
        if snapshot.item_name and not snapshot.unknown_item:
            return snapshot.item_name
        return f"Unknown item ({snapshot.item_id[:8]})"

    def snapshot(self) -> Snapshot | None:
        current = self.tree.currentItem()
        if current is None or not current.isSelected():
            return None
        value = current.data(0, RECORD)
        return value if isinstance(value, Snapshot) else None

    def isComplete(self) -> bool:
        return self.snapshot() is not None

    def browse_snapshot(self, snapshot: Snapshot | None = None) -> None:
        """Browse snapshot in file manager: the agent mounts it read-only until the
        wizard closes."""
        vault = self.owner.vault_page.vault()
        snapshot = snapshot or self.snapshot()
        if vault is None or snapshot is None:
            self.state.setText("Select a snapshot to browse.")
            return
        self.state.setText("Opening the snapshot in the file manager…")
        self.browser.browse(vault.vault_id, snapshot.snapshot_id)

    def listed_snapshots(self) -> list[Snapshot]:
        found: list[Snapshot] = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount() if top is not None else 0):
                child = top.child(j) if top is not None else None
                value = child.data(0, RECORD) if child is not None else None
                if isinstance(value, Snapshot):
                    found.append(value)
        return found

    def select_snapshot(self, snapshot_id: str) -> bool:
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            if top is None:
                continue
            for j in range(top.childCount()):
                child = top.child(j)
                value = child.data(0, RECORD) if child is not None else None
                if isinstance(value, Snapshot) and value.snapshot_id == snapshot_id:
                    top.setExpanded(True)
                    self.tree.setCurrentItem(child)
                    return True
        return False

    def open_search(self) -> SearchDialog | None:
        vault = self.owner.vault_page.vault()
        if vault is None:
            return None
        snapshots = self.listed_snapshots()
        labels = {s.snapshot_id: f"{self._label(s)}, {units.when(s.time)}" for s in snapshots}
        dialog = SearchDialog(vault.name, labels, self)
        ids = tuple(labels)

        def run(query: FindQuery) -> None:
            self.owner.client.find(vault.vault_id, ids, query).then(
                dialog.show_result, lambda e: dialog.show_error(e.message)
            )

        dialog.search_requested.connect(run)
        dialog.chosen.connect(self._found_chosen)
        self.search_dialog = dialog
        dialog.open()
        return dialog

    def _found_chosen(self, hit: FoundEntry) -> None:
        if self.select_snapshot(hit.snapshot_id):
            self.owner.files_page.preselect(hit.entry.path)
            self.state.setText(f"Found {hit.entry.path}: its snapshot is selected. Click Next.")
        else:
            self.state.setText("That snapshot is no longer listed; refresh and search again.")

    def _context_menu(self, pos: QPoint) -> None:
        entry = self.tree.itemAt(pos)
        if entry is None or entry.parent() is None:
            return  # only snapshot rows can be deleted, not a whole item
        snapshot = entry.data(0, RECORD)
        if not isinstance(snapshot, Snapshot):
            return
        menu = QMenu(self)
        menu.addAction("Browse snapshot in file manager", lambda: self.browse_snapshot(snapshot))
        action = menu.addAction("Delete this snapshot", lambda: self.delete_snapshot(snapshot))
        if action is not None and self.owner.profile.policy.prevent_delete_snapshot:
            action.setEnabled(False)
            action.setToolTip(self.owner.profile.policy.reason("deleting snapshots"))
            menu.setToolTipsVisible(True)
        viewport = self.tree.viewport()
        assert viewport is not None
        menu.exec(viewport.mapToGlobal(pos))

    def delete_snapshot(self, snapshot: Snapshot, *, confirm: bool = True) -> None:
        vault = self.owner.vault_page.vault()
        if vault is None:
            return
        if confirm:
            answer = QMessageBox.question(
                self,
                "Delete this snapshot",
                f"Delete the snapshot of {units.when(snapshot.time)} from “{vault.name}”? "
                "Data no other snapshot uses is removed at once; this cannot be undone.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.state.setText("Deleting the snapshot…")
        self.owner.client.start_vault_job(
            vault.vault_id, Classification.DELETE_SNAPSHOT, snapshot_ids=(snapshot.snapshot_id,)
        ).then(self._deleting, self._delete_failed)

    def _deleting(self, job: Job) -> None:
        self.owner.job_started.emit(job)
        self.state.setText("Deleting the snapshot: progress is on the Account tab. Refresh later.")

    def _delete_failed(self, error: ApiError) -> None:
        self.state.setText(f"Could not delete the snapshot: {error.message}")
