"""``ImportDialog``: backup products found on this device (borgmatic, restic, …); the
chosen one is imported as Protected Items, Storage Vaults and schedules."""

from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from comet.gui.models import ImportSourceTableModel
from comet.gui.records import ImportSource, Job, JobStatus
from comet.gui.theme import Tone, record_table, set_tone


class ImportDialog(QDialog):
    """Emits ``import_requested(source)``; the owner starts the job and reports back
    through ``show_running`` / ``show_result`` / ``show_error``."""

    import_requested = pyqtSignal(object)  # ImportSource

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import settings")
        self.resize(640, 360)
        self.message = QLabel("Looking for other backup products on this device…")
        self.message.setWordWrap(True)
        self.model = ImportSourceTableModel(self)
        self.table = record_table(self.model, [ImportSourceTableModel.DESCRIPTION])
        selection = self.table.selectionModel()
        assert selection is not None
        selection.selectionChanged.connect(self._update)
        self.table.doubleClicked.connect(lambda _index: self._import())
        self.import_button = QPushButton("Import")
        self.import_button.setToolTip(
            "Create Protected Items, Storage Vaults and schedules from the chosen settings"
        )
        self.import_button.clicked.connect(self._import)
        self.outcome = QLabel()
        self.outcome.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.import_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.outcome)
        layout.addWidget(buttons)
        self._busy = False
        self._update()

    def show_sources(self, sources: list[ImportSource]) -> None:
        self.model.set_rows(sources)
        if sources:
            self.message.setText("Choose the settings to import:")
            self.table.selectRow(0)
        else:
            self.message.setText("No supported backup product was found on this device.")
        self._update()

    def selected(self) -> ImportSource | None:
        selection = self.table.selectionModel()
        rows = selection.selectedRows() if selection is not None else []
        return self.model.record(rows[0].row()) if rows else None

    def _import(self) -> None:
        source = self.selected()
        if source is None or self._busy:
            return
        self._busy = True
        set_tone(self.outcome, None)
        self.outcome.setText(f"Importing {source.product} settings…")
        self._update()
        self.import_requested.emit(source)

    def show_running(self, job: Job) -> None:
        self.outcome.setText(f"Importing… ({job.status.label})")

    def show_result(self, job: Job) -> None:
        self._busy = False
        ok = job.status in (JobStatus.SUCCESS, JobStatus.WARNING)
        text = f"Import finished: {job.status.label}."
        if job.status is JobStatus.WARNING:
            text += " Some settings need attention: see the job log in History."
        if job.error_message:
            text += f" {job.error_message}"
        if ok:
            text += " The new Protected Items and Storage Vaults are listed in the app."
        set_tone(self.outcome, None if ok else Tone.ERROR)
        self.outcome.setText(text)
        self._update()

    def show_error(self, message: str) -> None:
        self._busy = False
        set_tone(self.outcome, Tone.ERROR)
        self.outcome.setText(message)
        self._update()

    def _update(self) -> None:
        self.import_button.setEnabled(self.selected() is not None and not self._busy)
