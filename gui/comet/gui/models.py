"""Table models behind every list in the app, each with its column constants.

Models hold records (see ``records``) and are filled by views from ``AgentClient``
signals on the UI thread; they never call the agent themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from PyQt6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PyQt6.QtGui import QBrush, QColor, QIcon

from comet.gui import units
from comet.gui.records import (
    Classification,
    Device,
    FoundEntry,
    ImportSource,
    Job,
    JobStatus,
    LogEntry,
    ProtectedItem,
    Severity,
    StorageVault,
)
from comet.gui.theme import Tone, dot_icon

T = TypeVar("T")
AnyIndex = QModelIndex | QPersistentModelIndex
DISPLAY = Qt.ItemDataRole.DisplayRole
RECORD_ROLE = Qt.ItemDataRole.UserRole + 1


def status_tone(status: JobStatus) -> Tone:
    if status is JobStatus.SUCCESS:
        return Tone.OK
    if status.running:
        return Tone.RUNNING
    if status in (JobStatus.WARNING, JobStatus.SKIPPED, JobStatus.MISSED):
        return Tone.WARNING
    if status is JobStatus.CANCELLED:
        return Tone.MUTED
    return Tone.ERROR


def status_colour(status: JobStatus) -> QColor:
    return status_tone(status).colour


def status_icon(status: JobStatus) -> QIcon:
    """A small dot in the status's colour."""
    return dot_icon(status_tone(status))


class RecordTableModel(QAbstractTableModel, Generic[T]):
    """A table of records; subclasses name their columns and render cells."""

    HEADERS: ClassVar[Sequence[str]] = ()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[T] = []

    def set_rows(self, rows: Sequence[T]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def rows(self) -> list[T]:
        return list(self._rows)

    def record(self, row: int) -> T | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = DISPLAY) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == DISPLAY:
            return self.HEADERS[section]
        return None

    def data(self, index: AnyIndex, role: int = DISPLAY) -> Any:
        row = self.record(index.row())
        if row is None:
            return None
        if role == RECORD_ROLE:
            return row
        return self.cell(row, index.column(), role)

    def cell(self, row: T, column: int, role: int) -> Any:
        raise NotImplementedError


class ItemTableModel(RecordTableModel[ProtectedItem]):
    """This device's Protected Items with their last or running job."""

    NAME, TYPE, LAST_BACKUP, STATUS = range(4)
    HEADERS = ("Name", "Type", "Last backup", "Status")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._last: dict[str, Job] = {}

    def set_jobs(self, jobs: Sequence[Job]) -> None:
        """Remember each item's newest backup (or restore in progress)."""
        latest: dict[str, Job] = {}
        for job in jobs:
            if not job.item_id or job.started_at is None:
                continue
            if job.classification is not Classification.BACKUP and not job.status.running:
                continue
            old = latest.get(job.item_id)
            if old is None or (old.started_at is not None and job.started_at > old.started_at):
                latest[job.item_id] = job
        self.beginResetModel()
        self._last = latest
        self.endResetModel()

    def update_job(self, job: Job) -> None:
        if not job.item_id:
            return
        if job.classification is not Classification.BACKUP and not job.status.running:
            return
        self._last[job.item_id] = job
        for row, item in enumerate(self._rows):
            if item.item_id == job.item_id:
                self.dataChanged.emit(self.index(row, 0), self.index(row, self.STATUS))

    def last_job(self, item_id: str) -> Job | None:
        return self._last.get(item_id)

    def cell(self, row: ProtectedItem, column: int, role: int) -> Any:
        job = self._last.get(row.item_id)
        if role == DISPLAY:
            if column == self.NAME:
                return row.name
            if column == self.TYPE:
                return row.type.label
            if column == self.LAST_BACKUP:
                return units.when(job.started_at) if job else "Never"
            if column == self.STATUS:
                if job is None:
                    return ""
                if job.status.running:
                    return f"{job.classification.label} running: {units.progress_line(job)}"
                return job.status.label
        if column == self.STATUS and job is not None:
            if role == Qt.ItemDataRole.DecorationRole:
                return status_icon(job.status)
            if role == Qt.ItemDataRole.ForegroundRole:
                return QBrush(status_colour(job.status))
        if role == Qt.ItemDataRole.ToolTipRole and column == self.NAME:
            return "\n".join(row.includes) or row.program_command
        return None


class VaultTableModel(RecordTableModel[StorageVault]):
    NAME, TYPE, LOCATION = range(3)
    HEADERS = ("Name", "Type", "Location")

    def cell(self, row: StorageVault, column: int, role: int) -> Any:
        if role != DISPLAY:
            return None
        return (row.name, row.type.label, row.location)[column]


class DeviceTableModel(RecordTableModel[Device]):
    NAME, PLATFORM, VERSION, REGISTERED, ONLINE = range(5)
    HEADERS = ("Device", "Platform", "Version", "Registered", "Online")

    def cell(self, row: Device, column: int, role: int) -> Any:
        if role != DISPLAY:
            return None
        return (
            row.name,
            f"{row.os} {row.arch}".strip(),
            row.client_version,
            units.when(row.registered_at),
            "revoked" if row.revoked else ("yes" if row.online else "no"),
        )[column]


class ImportSourceTableModel(RecordTableModel[ImportSource]):
    PRODUCT, DESCRIPTION, PATH = range(3)
    HEADERS = ("Product", "Description", "Found at")

    def cell(self, row: ImportSource, column: int, role: int) -> Any:
        if role != DISPLAY:
            return None
        return (row.product, row.description, row.path)[column]


class SearchResultTableModel(RecordTableModel[FoundEntry]):
    """Search hits; ``snapshot_times`` names each snapshot by when it was taken."""

    PATH, SIZE, MODIFIED, SNAPSHOT = range(4)
    HEADERS = ("Path", "Size", "Modified", "Snapshot")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.snapshot_labels: dict[str, str] = {}

    def cell(self, row: FoundEntry, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.ToolTipRole and column == self.SNAPSHOT:
            return row.snapshot_id
        if role != DISPLAY:
            return None
        entry = row.entry
        return (
            entry.path + ("/" if entry.is_dir else ""),
            "" if entry.is_dir else units.size(entry.size),
            units.when(entry.mtime),
            self.snapshot_labels.get(row.snapshot_id, row.snapshot_id[:8]),
        )[column]


@dataclass(frozen=True)
class NameBook:
    """Names to show for ids found in jobs."""

    items: dict[str, str]
    vaults: dict[str, str]
    devices: dict[str, str]


class HistoryTableModel(RecordTableModel[Job]):
    TIME, CLASSIFICATION, STATUS, ITEM, VAULT, DEVICE, SIZE, DURATION = range(8)
    HEADERS = (
        "Time",
        "Type",
        "Status",
        "Protected Item",
        "Storage Vault",
        "Device",
        "Size",
        "Duration",
    )

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.names = NameBook({}, {}, {})

    def set_names(self, names: NameBook) -> None:
        self.beginResetModel()
        self.names = names
        self.endResetModel()

    def upsert(self, job: Job) -> None:
        for row, old in enumerate(self._rows):
            if old.job_id == job.job_id:
                self._rows[row] = job
                self.dataChanged.emit(self.index(row, 0), self.index(row, self.DURATION))
                return
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._rows.insert(0, job)
        self.endInsertRows()

    def item_name(self, job: Job) -> str:
        if not job.item_id:
            return ""
        return self.names.items.get(job.item_id, f"Unknown item ({job.item_id[:8]})")

    def vault_name(self, job: Job) -> str:
        return self.names.vaults.get(job.vault_id, job.vault_id[:8])

    def device_name(self, job: Job) -> str:
        return self.names.devices.get(job.device_id, job.device_id[:8])

    def cell(self, row: Job, column: int, role: int) -> Any:
        if role == DISPLAY:
            return (
                units.when(row.started_at),
                row.classification.label,
                row.status.label,
                self.item_name(row),
                self.vault_name(row),
                self.device_name(row),
                units.size(row.bytes),
                units.duration(row.duration_seconds),
            )[column]
        if column == self.STATUS:
            if role == Qt.ItemDataRole.DecorationRole:
                return status_icon(row.status)
            if role == Qt.ItemDataRole.ForegroundRole:
                return QBrush(status_colour(row.status))
            if role == Qt.ItemDataRole.ToolTipRole and row.error_message:
                return row.error_message
        return None


@dataclass(frozen=True)
class HistoryFilter:
    """Empty fields match everything."""

    statuses: frozenset[JobStatus] = frozenset()
    classification: Classification | None = None
    item_id: str = ""
    vault_id: str = ""
    device_id: str = ""

    def matches(self, job: Job) -> bool:
        return (
            (not self.statuses or job.status in self.statuses)
            and (self.classification is None or job.classification is self.classification)
            and (not self.item_id or job.item_id == self.item_id)
            and (not self.vault_id or job.vault_id == self.vault_id)
            # Jobs recorded before the device was known carry no device id: they are ours.
            and (not self.device_id or job.device_id in (self.device_id, ""))
        )


class RecordFilterProxy(QSortFilterProxyModel):
    """Shows the rows whose record the current predicate accepts."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._accepts: Any = None

    def set_predicate(self, accepts: Any) -> None:
        self.beginFilterChange()
        self._accepts = accepts
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: AnyIndex) -> bool:
        if self._accepts is None:
            return True
        model = self.sourceModel()
        if model is None:
            return True
        # Table models only: every row hangs off the invisible root.
        record = model.data(model.index(source_row, 0), RECORD_ROLE)
        return bool(self._accepts(record))

    def record(self, row: int) -> Any:
        model = self.sourceModel()
        if model is None:
            return None
        source = self.mapToSource(self.index(row, 0))
        return model.data(source, RECORD_ROLE)


class LogTableModel(RecordTableModel[LogEntry]):
    TIME, SEVERITY, MESSAGE = range(3)
    HEADERS = ("Time", "Severity", "Message")

    _TONES: ClassVar[dict[Severity, Tone]] = {
        Severity.WARNING: Tone.WARNING,
        Severity.ERROR: Tone.ERROR,
        Severity.DEBUG: Tone.DEBUG,
    }

    def cell(self, row: LogEntry, column: int, role: int) -> Any:
        if role == DISPLAY:
            return (units.when(row.time), row.severity.name.capitalize(), row.message)[column]
        if role == Qt.ItemDataRole.ForegroundRole and row.severity in self._TONES:
            return QBrush(self._TONES[row.severity].colour)
        return None
