"""``RestoreWizard``: Storage Vault → Protected Item and snapshot → files → restore
type → destination → run. Snapshots can also be deleted from the item page."""

from __future__ import annotations

from dataclasses import replace

from PyQt6.QtCore import QPoint, Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QTableView,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from comet.gui import units
from comet.gui.agent_client import AgentClient, ApiError
from comet.gui.models import VaultTableModel
from comet.gui.records import (
    ArchiveFormat,
    Classification,
    FindQuery,
    FoundEntry,
    Job,
    Profile,
    RestoreSpec,
    RestoreType,
    Snapshot,
    SnapshotEntry,
    StorageVault,
)
from comet.gui.search_dialog import SearchDialog
from comet.gui.snapshot_browser import SnapshotBrowser

RECORD = Qt.ItemDataRole.UserRole
LOADING = "Loading…"


def _error_label() -> QLabel:
    label = QLabel()
    label.setStyleSheet("color: #c62828")
    label.setWordWrap(True)
    return label


class VaultPage(QWizardPage):
    def __init__(self, vaults: tuple[StorageVault, ...]) -> None:
        super().__init__()
        self.setTitle("Storage Vault")
        self.setSubTitle("Select the Storage Vault containing the backed-up data.")
        self.model = VaultTableModel(self)
        self.model.set_rows(vaults)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)  # type: ignore[union-attr]
        header = self.table.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(VaultTableModel.LOCATION, QHeaderView.ResizeMode.Stretch)
        selection = self.table.selectionModel()
        assert selection is not None
        selection.selectionChanged.connect(self.completeChanged)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        if vaults:
            self.table.selectRow(0)

    def vault(self) -> StorageVault | None:
        selection = self.table.selectionModel()
        rows = selection.selectedRows() if selection is not None else []
        return self.model.record(rows[0].row()) if rows else None

    def select_vault(self, vault_id: str) -> None:
        for row, vault in enumerate(self.model.rows()):
            if vault.vault_id == vault_id:
                self.table.selectRow(row)

    def isComplete(self) -> bool:
        return self.vault() is not None


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
            self.state.setStyleSheet("color: #c62828")

        client.list_snapshots(vault.vault_id, all_devices=self.other_devices.isChecked()).then(
            got, failed
        )
        if self.unknown.isChecked():
            client.list_snapshots(vault.vault_id, unknown_items=True).then(got, failed)

    def _show(self, snapshots: list[Snapshot]) -> None:
        self.loading = False
        self.state.setStyleSheet("")
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


class TypePage(QWizardPage):
    """How to restore: files and folders, simulate, program input or an archive file."""

    def __init__(self, wizard: RestoreWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setTitle("Restore type")
        self.setSubTitle("Choose how the restored data is delivered.")
        self.files = QRadioButton("Files and Folders")
        self.original_paths = QCheckBox("Restore to original paths")
        self.overwrite = QCheckBox("Overwrite existing files")
        self.overwrite.setToolTip(
            "Checked: files that already exist are overwritten. Unchecked: they are skipped."
        )
        self.simulate = QRadioButton("Simulate restore only")
        self.simulate.setToolTip("Download and reassemble everything, but write nothing")
        self.program = QRadioButton("Program Input")
        self.command = QLineEdit()
        self.command.setPlaceholderText("Command receiving the data on standard input")
        self.per_file = QRadioButton("Run the command once per file")
        self.as_archive = QRadioButton("Send all files as one archive stream")
        self.per_file.setChecked(True)
        program_group = QButtonGroup(self)
        program_group.addButton(self.per_file)
        program_group.addButton(self.as_archive)
        self.archive = QRadioButton("Compressed archive file")
        self.format = QComboBox()
        for label, fmt in (
            ("zip (compressed)", ArchiveFormat.ZIP),
            ("tar (uncompressed)", ArchiveFormat.TAR),
            ("tar.gz (compressed)", ArchiveFormat.TAR_GZ),
            ("tar.zst (compressed)", ArchiveFormat.TAR_ZST),
            ("sqfs (compressed, mountable)", ArchiveFormat.SQFS),
        ):
            self.format.addItem(label, fmt)
        kinds = QButtonGroup(self)
        for button in (self.files, self.simulate, self.program, self.archive):
            kinds.addButton(button)
            button.toggled.connect(self._update)
        self.files.setChecked(True)
        self.command.textChanged.connect(self.completeChanged)

        layout = QVBoxLayout(self)
        layout.addWidget(self.files)
        layout.addWidget(self._indented(self.original_paths, self.overwrite))
        layout.addWidget(self.simulate)
        layout.addWidget(self.program)
        layout.addWidget(self._indented(self.command, self.per_file, self.as_archive))
        layout.addWidget(self.archive)
        layout.addWidget(self._indented(self.format))
        layout.addStretch(1)

    @staticmethod
    def _indented(*widgets: QWidget) -> QWidget:
        box = QWidget()
        inner = QVBoxLayout(box)
        inner.setContentsMargins(24, 0, 0, 0)
        for widget in widgets:
            inner.addWidget(widget)
        return box

    def initializePage(self) -> None:
        snapshot = self.owner.item_page.snapshot()
        has_paths = bool(snapshot and snapshot.has_original_paths)
        self.original_paths.setProperty("available", has_paths)
        if not has_paths:
            self.original_paths.setChecked(False)
            self.original_paths.setToolTip(
                "Not available: this snapshot holds no original path information"
            )
        else:
            self.original_paths.setToolTip("Put every file back where it was backed up from")
        self._update()

    def _update(self) -> None:
        available = bool(self.original_paths.property("available"))
        self.original_paths.setEnabled(self.files.isChecked() and available)
        # Files and folders, or an archive file that already exists: never a surprise.
        self.overwrite.setEnabled(self.files.isChecked() or self.archive.isChecked())
        for widget in (self.command, self.per_file, self.as_archive):
            widget.setEnabled(self.program.isChecked())
        self.format.setEnabled(self.archive.isChecked())
        self.completeChanged.emit()

    def restore_type(self) -> RestoreType:
        if self.simulate.isChecked():
            return RestoreType.SIMULATE
        if self.program.isChecked():
            return (
                RestoreType.PROGRAM_ARCHIVE
                if self.as_archive.isChecked()
                else RestoreType.PROGRAM_PER_FILE
            )
        if self.archive.isChecked():
            return RestoreType.ARCHIVE_FILE
        return RestoreType.FILES

    def archive_format(self) -> ArchiveFormat:
        return ArchiveFormat(self.format.currentData())

    def set_archive_format(self, fmt: ArchiveFormat) -> None:
        self.format.setCurrentIndex(self.format.findData(fmt))

    def isComplete(self) -> bool:
        return not self.program.isChecked() or bool(self.command.text().strip())


class DestinationPage(QWizardPage):
    """A folder (Files and Folders) or a file (archive); nothing for the other types."""

    def __init__(self, wizard: RestoreWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setTitle("Destination")
        self.explain = QLabel()
        self.explain.setWordWrap(True)
        self.path = QLineEdit()
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self._browse)
        self.path.textChanged.connect(self.completeChanged)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(self.browse)
        self.row = QWidget()
        self.row.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.addWidget(self.explain)
        layout.addWidget(self.row)
        layout.addStretch(1)

    def needs_path(self) -> bool:
        kind = self.owner.type_page.restore_type()
        if kind is RestoreType.FILES:
            return not self.owner.type_page.original_paths.isChecked()
        return kind is RestoreType.ARCHIVE_FILE

    def initializePage(self) -> None:
        kind = self.owner.type_page.restore_type()
        self.row.setVisible(self.needs_path())
        if kind is RestoreType.FILES and self.needs_path():
            self.explain.setText("Select the folder to restore into.")
            self.path.setPlaceholderText("/home/me/restored")
        elif kind is RestoreType.ARCHIVE_FILE:
            ext = self.owner.type_page.archive_format().extension
            self.explain.setText(f"Select the archive file to write (.{ext}).")
            self.path.setPlaceholderText(f"/home/me/restore.{ext}")
        elif kind is RestoreType.FILES:
            self.explain.setText("The files go back to the paths they were backed up from.")
        elif kind is RestoreType.SIMULATE:
            self.explain.setText("A simulated restore writes nothing: no destination is needed.")
        else:
            self.explain.setText(
                f"The data is sent to “{self.owner.type_page.command.text().strip()}”."
            )

    def _browse(self) -> None:
        kind = self.owner.type_page.restore_type()
        if kind is RestoreType.ARCHIVE_FILE:
            ext = self.owner.type_page.archive_format().extension
            chosen, _ = QFileDialog.getSaveFileName(
                self, "Save the archive as", f"restore.{ext}", f"Archive (*.{ext})"
            )
        else:
            chosen = QFileDialog.getExistingDirectory(self, "Restore into this folder")
        if chosen:
            self.path.setText(chosen)

    def isComplete(self) -> bool:
        return not self.needs_path() or self.path.text().strip().startswith("/")


class RunPage(QWizardPage):
    def __init__(self, wizard: RestoreWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setTitle("Restore")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.error = _error_label()
        form = QFormLayout(self)
        form.addRow(self.summary)
        form.addRow(self.error)

    def initializePage(self) -> None:
        self.error.clear()
        spec = self.owner.spec()
        snapshot = self.owner.item_page.snapshot()
        vault = self.owner.vault_page.vault()
        what = f"{len(spec.paths)} selected paths" if spec.paths else "all files"
        where = {
            RestoreType.FILES: f"into {spec.destination}"
            if spec.destination
            else "to their original paths",
            RestoreType.SIMULATE: "as a simulation (nothing is written)",
            RestoreType.PROGRAM_PER_FILE: f"to the command {spec.program_command!r}, per file",
            RestoreType.PROGRAM_ARCHIVE: f"to the command {spec.program_command!r}, as one archive",
            RestoreType.ARCHIVE_FILE: f"as a {spec.archive_format.extension} file "
            f"{spec.destination}",
        }[spec.type]
        self.summary.setText(
            f"Restore {what} of “{ItemPage._label(snapshot) if snapshot else '?'}” "
            f"(snapshot of {units.when(snapshot.time) if snapshot else '?'}) from "
            f"“{vault.name if vault else '?'}” {where}.\n\n"
            "The restore runs in the background; its progress appears in the main window."
        )


class RestoreWizard(QWizard):
    """Emits ``job_started`` for the restore (and for snapshot deletions)."""

    job_started = pyqtSignal(object)  # Job

    VAULT, ITEM, FILES, TYPE, DESTINATION, RUN = range(6)

    def __init__(
        self,
        client: AgentClient,
        profile: Profile,
        *,
        device_names: dict[str, str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.profile = profile
        self.device_names = device_names or {}
        self.setWindowTitle("Restore")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.resize(760, 560)
        self.vault_page = VaultPage(profile.vaults)
        self.item_page = ItemPage(self)
        self.files_page = FilesPage(self)
        self.type_page = TypePage(self)
        self.destination_page = DestinationPage(self)
        self.run_page = RunPage(self)
        for page_id, page in enumerate(
            (
                self.vault_page,
                self.item_page,
                self.files_page,
                self.type_page,
                self.destination_page,
                self.run_page,
            )
        ):
            self.setPage(page_id, page)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Restore")
        self.finished.connect(self.item_page.browser.close_all)  # unmount what was browsed

    def spec(self) -> RestoreSpec:
        vault = self.vault_page.vault()
        snapshot = self.item_page.snapshot()
        kind = self.type_page.restore_type()
        needs_path = self.destination_page.needs_path()
        spec = RestoreSpec(
            vault_id=vault.vault_id if vault else "",
            snapshot_id=snapshot.snapshot_id if snapshot else "",
            item_id=snapshot.item_id if snapshot else "",
            type=kind,
            destination=self.destination_page.path.text().strip() if needs_path else "",
            paths=self.files_page.selected_paths(),
        )
        if kind is RestoreType.FILES:
            spec = replace(
                spec,
                original_paths=self.type_page.original_paths.isChecked(),
                overwrite=self.type_page.overwrite.isChecked(),
            )
        elif kind in (RestoreType.PROGRAM_PER_FILE, RestoreType.PROGRAM_ARCHIVE):
            spec = replace(spec, program_command=self.type_page.command.text().strip())
        elif kind is RestoreType.ARCHIVE_FILE:
            spec = replace(
                spec,
                archive_format=self.type_page.archive_format(),
                overwrite=self.type_page.overwrite.isChecked(),
            )
        return spec

    def accept(self) -> None:
        finish = self.button(QWizard.WizardButton.FinishButton)
        if finish is not None:
            finish.setEnabled(False)
        self.run_page.error.clear()
        self.client.start_restore(self.spec()).then(self._started, self._failed)

    def _started(self, job: Job) -> None:
        # The agent leaves item_id empty when a snapshot id was given: say which it is.
        self.job_started.emit(job if job.item_id else replace(job, item_id=self.spec().item_id))
        super().accept()

    def _failed(self, error: ApiError) -> None:
        finish = self.button(QWizard.WizardButton.FinishButton)
        if finish is not None:
            finish.setEnabled(True)
        self.run_page.error.setText(f"The restore did not start: {error.message}")
