"""``SearchDialog``: find files by name across a vault's snapshots (a name glob, an
optional size range and modification range). Choosing a hit emits ``chosen``."""

from __future__ import annotations

from datetime import UTC, datetime

from PyQt6.QtCore import QDateTime, Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from comet.gui.models import SearchResultTableModel
from comet.gui.records import FindQuery, FoundEntry, SearchResult
from comet.gui.theme import record_table

KIB = 1024


def _datetime(edit: QDateTimeEdit) -> datetime:
    return datetime.fromtimestamp(edit.dateTime().toSecsSinceEpoch(), UTC)


class SearchDialog(QDialog):
    """Emits ``search_requested(FindQuery)``; the owner runs it and calls
    ``show_result`` or ``show_error``. ``chosen(FoundEntry)`` when a hit is picked."""

    search_requested = pyqtSignal(object)  # FindQuery
    chosen = pyqtSignal(object)  # FoundEntry

    def __init__(
        self,
        vault_name: str,
        snapshot_labels: dict[str, str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Search in “{vault_name}”")
        self.resize(760, 480)
        self.name = QLineEdit()
        self.name.setPlaceholderText("Name pattern, e.g. *.pdf or report-202?.txt")
        self.name.returnPressed.connect(self.search)
        self.use_size = QCheckBox("Between")
        self.min_kib = QSpinBox()
        self.max_kib = QSpinBox()
        for box in (self.min_kib, self.max_kib):
            box.setRange(0, 2**31 - 1)
            box.setSuffix(" KiB")
            box.setEnabled(False)
            self.use_size.toggled.connect(box.setEnabled)
        self.max_kib.setSpecialValueText("no limit")
        self.use_time = QCheckBox("Between")
        now = QDateTime.currentDateTime()
        self.after = QDateTimeEdit(now.addDays(-30))
        self.before = QDateTimeEdit(now.addDays(1))
        for edit in (self.after, self.before):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd HH:mm")
            edit.setEnabled(False)
            self.use_time.toggled.connect(edit.setEnabled)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        size_row = QHBoxLayout()
        size_row.addWidget(self.use_size)
        size_row.addWidget(self.min_kib, 1)
        size_row.addWidget(QLabel("and"))
        size_row.addWidget(self.max_kib, 1)
        time_row = QHBoxLayout()
        time_row.addWidget(self.use_time)
        time_row.addWidget(self.after, 1)
        time_row.addWidget(QLabel("and"))
        time_row.addWidget(self.before, 1)
        form = QFormLayout()
        name_row = QHBoxLayout()
        name_row.addWidget(self.name, 1)
        name_row.addWidget(self.search_button)
        form.addRow("Name:", name_row)
        form.addRow("Size:", size_row)
        form.addRow("Modified:", time_row)
        self.model = SearchResultTableModel(self)
        self.model.snapshot_labels = dict(snapshot_labels)
        self.table = record_table(self.model, [SearchResultTableModel.PATH])
        self.table.setTextElideMode(Qt.TextElideMode.ElideLeft)  # the file name matters most
        self.table.doubleClicked.connect(lambda _index: self.choose())
        selection = self.table.selectionModel()
        assert selection is not None
        selection.selectionChanged.connect(self._update)
        self.state = QLabel("Enter a name pattern and press Search.")
        self.state.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.use_button = QPushButton("Restore this")
        self.use_button.setToolTip("Select this snapshot and this path in the Restore wizard")
        self.use_button.clicked.connect(self.choose)
        self.buttons.addButton(self.use_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.state)
        layout.addWidget(self.buttons)
        self._update()

    def query(self) -> FindQuery:
        use_size = self.use_size.isChecked()
        use_time = self.use_time.isChecked()
        return FindQuery(
            name_glob=self.name.text().strip(),
            min_size=self.min_kib.value() * KIB if use_size else 0,
            max_size=self.max_kib.value() * KIB if use_size else 0,
            modified_after=_datetime(self.after) if use_time else None,
            modified_before=_datetime(self.before) if use_time else None,
        )

    def problem(self) -> str:
        query = self.query()
        if not query.name_glob:
            return "Enter a name pattern (use * for any name)."
        if query.max_size and query.max_size < query.min_size:
            return "The largest size is smaller than the smallest."
        if (
            query.modified_after
            and query.modified_before
            and query.modified_before <= query.modified_after
        ):
            return "The end of the modification range is before its start."
        return ""

    def search(self) -> None:
        problem = self.problem()
        if problem:
            self.state.setText(problem)
            return
        self.search_button.setEnabled(False)
        self.model.set_rows([])
        self.state.setText("Searching…")
        self._update()
        self.search_requested.emit(self.query())

    def show_result(self, result: SearchResult) -> None:
        self.search_button.setEnabled(True)
        self.model.set_rows(result.found)
        if not result.found:
            self.state.setText("Nothing matches.")
        else:
            more = " (more matches exist: narrow the search)" if result.truncated else ""
            self.state.setText(
                f"{len(result.found)} matches{more}. Double-click one to restore it."
            )
            self.table.selectRow(0)
        self._update()

    def show_error(self, message: str) -> None:
        self.search_button.setEnabled(True)
        self.state.setText(f"The search failed: {message}")

    def selected(self) -> FoundEntry | None:
        selection = self.table.selectionModel()
        rows = selection.selectedRows() if selection is not None else []
        return self.model.record(rows[0].row()) if rows else None

    def choose(self) -> None:
        hit = self.selected()
        if hit is None:
            return
        self.chosen.emit(hit)
        self.accept()

    def _update(self) -> None:
        self.use_button.setEnabled(self.selected() is not None)
