"""``HistoryTab``: jobs of this device (all devices while the filter pane is open),
filterable by status, classification, Protected Item, Storage Vault and device; a
double-click opens the job's log."""

from __future__ import annotations

from PyQt6.QtCore import QModelIndex, Qt
from PyQt6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from comet.gui.agent_client import AgentClient, ApiError
from comet.gui.dialogs import JobLogDialog
from comet.gui.models import HistoryFilter, HistoryTableModel, NameBook, RecordFilterProxy
from comet.gui.records import Classification, Job, JobLog, JobStatus
from comet.gui.theme import filter_icon, record_table, tidy, title_label

STATUS_CHOICES: tuple[tuple[str, frozenset[JobStatus]], ...] = (
    ("Any status", frozenset()),
    ("Success", frozenset({JobStatus.SUCCESS})),
    (
        "Running",
        frozenset({JobStatus.RUNNING, JobStatus.RUNNING_REVIVED, JobStatus.WAITING_TO_RETRY}),
    ),
    ("Warning", frozenset({JobStatus.WARNING})),
    (
        "Error",
        frozenset(
            {JobStatus.ERROR, JobStatus.TIMEOUT, JobStatus.QUOTA_EXCEEDED, JobStatus.ABANDONED}
        ),
    ),
    ("Cancelled", frozenset({JobStatus.CANCELLED})),
    ("Skipped or missed", frozenset({JobStatus.SKIPPED, JobStatus.MISSED})),
)


class HistoryTab(QWidget):
    def __init__(self, client: AgentClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.device_id = ""
        self.log_dialog: JobLogDialog | None = None

        # A push button lays its icon out beside the label (a tool button drew the
        # icon over the text in some styles).
        self.filter_button = QPushButton(filter_icon(), "Filter")
        self.filter_button.setCheckable(True)
        self.filter_button.setToolTip("Show or hide the filter pane")
        self.filter_button.toggled.connect(self.set_filter_visible)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)

        self.status = QComboBox()
        for label, statuses in STATUS_CHOICES:
            self.status.addItem(label, statuses)
        self.classification = QComboBox()
        self.classification.addItem("Any type", None)
        for kind in Classification:
            self.classification.addItem(kind.label, kind)
        self.item = QComboBox()
        self.vault = QComboBox()
        self.device = QComboBox()
        self.filter_pane = QFrame()
        self.filter_pane.setFrameShape(QFrame.Shape.StyledPanel)
        pane = QFormLayout(self.filter_pane)
        tidy(pane)
        # Labels above their fields keep the pane narrow, leaving the width to the jobs.
        pane.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)
        pane.addRow("Status:", self.status)
        pane.addRow("Type:", self.classification)
        pane.addRow("Protected Item:", self.item)
        pane.addRow("Storage Vault:", self.vault)
        pane.addRow("Device:", self.device)
        self.filter_pane.hide()
        for combo in (self.status, self.classification, self.item, self.vault, self.device):
            combo.currentIndexChanged.connect(self.apply_filter)

        self.model = HistoryTableModel(self)
        self.proxy = RecordFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = record_table(
            self.proxy, [HistoryTableModel.ITEM, HistoryTableModel.VAULT], single=False
        )
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.doubleClicked.connect(self._open_log)
        self.message = QLabel()
        self.message.setWordWrap(True)

        bar = QHBoxLayout()
        title = title_label("Job history")
        bar.addWidget(title)
        bar.addStretch(1)
        bar.addWidget(self.refresh_button)
        bar.addWidget(self.filter_button)
        body = QHBoxLayout()
        body.addWidget(self.table, 1)
        body.addWidget(self.filter_pane)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addLayout(body, 1)
        layout.addWidget(self.message)
        self.apply_filter()

    # ------------------------------------------------------------ data

    def set_names(self, names: NameBook, device_id: str) -> None:
        self.device_id = device_id
        self.model.set_names(names)
        for combo, book, anything in (
            (self.item, names.items, "Any Protected Item"),
            (self.vault, names.vaults, "Any Storage Vault"),
            (self.device, names.devices, "Any device"),
        ):
            chosen = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(anything, "")
            for key, name in sorted(book.items(), key=lambda kv: kv[1].lower()):
                combo.addItem(name, key)
            index = combo.findData(chosen)
            combo.setCurrentIndex(max(index, 0))
            combo.blockSignals(False)

    def refresh(self) -> None:
        self.client.history(all_devices=self.filter_pane.isVisible()).then(
            self.set_jobs, self._failed
        )

    def set_jobs(self, jobs: list[Job]) -> None:
        self.message.clear()
        ordered = sorted(jobs, key=lambda j: j.started_at.timestamp() if j.started_at else 0.0)
        self.model.set_rows(list(reversed(ordered)))
        self.apply_filter()

    def upsert(self, job: Job) -> None:
        self.model.upsert(job)

    def _failed(self, error: ApiError) -> None:
        self.message.setText(f"Could not load the history: {error.message}")

    # ------------------------------------------------------------ filtering

    def set_filter_visible(self, visible: bool) -> None:
        if self.filter_button.isChecked() != visible:
            self.filter_button.setChecked(visible)
            return
        self.filter_pane.setVisible(visible)
        self.apply_filter()
        self.refresh()

    def current_filter(self) -> HistoryFilter:
        if not self.filter_pane.isVisible():
            # With the pane closed the table shows every job of this device.
            return HistoryFilter(device_id=self.device_id)
        return HistoryFilter(
            statuses=self.status.currentData() or frozenset(),
            classification=self.classification.currentData(),
            item_id=self.item.currentData() or "",
            vault_id=self.vault.currentData() or "",
            device_id=self.device.currentData() or "",
        )

    def apply_filter(self) -> None:
        rule = self.current_filter()
        self.proxy.set_predicate(rule.matches)

    def visible_jobs(self) -> list[Job]:
        return [self.proxy.record(row) for row in range(self.proxy.rowCount())]

    # ------------------------------------------------------------ job log

    def _open_log(self, index: QModelIndex) -> None:
        job = self.proxy.record(index.row())
        if isinstance(job, Job):
            self.open_log(job)

    def open_log(self, job: Job) -> JobLogDialog:
        title = f"{job.classification.label} {self.model.item_name(job)}".strip()
        dialog = JobLogDialog(title, self)
        self.log_dialog = dialog
        self.client.job_log(job.job_id).then(
            lambda log: self._show_log(dialog, log),
            lambda error: dialog.show_error(f"Could not load the log: {error.message}"),
        )
        dialog.open()
        return dialog

    @staticmethod
    def _show_log(dialog: JobLogDialog, log: JobLog) -> None:
        dialog.show_log(log)
