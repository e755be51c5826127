"""``JobProgressPanel``: running jobs shown under the list they belong to, each with
bytes, files, speed, ETA (when the total is known), the current file and Cancel."""

from __future__ import annotations

from PyQt6.QtCore import QTimer, pyqtSignal
from PyQt6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from comet.gui import units
from comet.gui.records import Job

FINISHED_ROW_SECONDS = 20


class JobRow(QFrame):
    cancel_requested = pyqtSignal(str)
    expired = pyqtSignal(str)

    def __init__(self, job: Job, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job_id = job.job_id
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QGridLayout(self)
        self.title = QLabel(title)
        self.title.setStyleSheet("font-weight: bold")
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop this job; nothing half-done is kept")
        self.cancel_button.clicked.connect(lambda: self.cancel_requested.emit(self.job_id))
        layout.addWidget(self.title, 0, 0)
        layout.addWidget(self.cancel_button, 0, 1)
        layout.addWidget(self.bar, 1, 0, 1, 2)
        layout.addWidget(self.detail, 2, 0, 1, 2)
        self._expiry = QTimer(self)
        self._expiry.setSingleShot(True)
        self._expiry.timeout.connect(lambda: self.expired.emit(self.job_id))
        self.update_job(job)

    def update_job(self, job: Job) -> None:
        total = job.progress.bytes_total
        if job.status.running:
            if total:
                self.bar.setRange(0, 1000)
                self.bar.setValue(int(1000 * min(job.progress.bytes_done / total, 1.0)))
            else:
                self.bar.setRange(0, 0)  # busy indicator: the total is not known yet
            self.detail.setText(units.progress_line(job))
            return
        if not self._expiry.isActive():
            self._expiry.start(FINISHED_ROW_SECONDS * 1000)
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.cancel_button.setEnabled(False)
        text = f"{job.status.label}: {units.size(job.bytes)}, {job.files} files"
        text += f" in {units.duration(job.duration_seconds)}"
        if job.error_message:
            text += f" — {job.error_message}"
        self.detail.setText(text)


class JobProgressPanel(QWidget):
    """A column of ``JobRow``s, one per job started or seen running here."""

    cancel_requested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.rows: dict[str, JobRow] = {}

    def show_job(self, job: Job, title: str) -> None:
        row = self.rows.get(job.job_id)
        if row is None:
            row = JobRow(job, title, self)
            row.cancel_requested.connect(self.cancel_requested)
            row.expired.connect(self.drop)
            self.rows[job.job_id] = row
            self._layout.addWidget(row)
        else:
            row.update_job(job)

    def drop(self, job_id: str) -> None:
        row = self.rows.pop(job_id, None)
        if row is not None:
            row.setParent(None)
            row.deleteLater()
