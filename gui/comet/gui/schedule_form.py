"""``ScheduleForm``: when one Protected Item is backed up to one Storage Vault: daily at
HH:MM, hourly, weekly or every N seconds, with "skip if running" and a time limit."""

from __future__ import annotations

from PyQt6.QtCore import QTime
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QSpinBox,
    QTimeEdit,
    QWidget,
)

from comet.gui.records import Frequency, Schedule

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class ScheduleForm(QWidget):
    """``schedule()`` gives None when "No schedule" is chosen."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.frequency = QComboBox()
        self.frequency.addItem("No schedule", None)
        for kind in Frequency:
            self.frequency.addItem(kind.label, kind)
        self.time = QTimeEdit(QTime(2, 0))
        self.time.setDisplayFormat("HH:mm")
        self.minute = QSpinBox()
        self.minute.setRange(0, 59)
        self.minute.setPrefix(":")
        self.days: list[QCheckBox] = [QCheckBox(d) for d in WEEKDAYS]
        self.days_row = QWidget()
        row = QHBoxLayout(self.days_row)
        row.setContentsMargins(0, 0, 0, 0)
        for box in self.days:
            row.addWidget(box)
        self.every = QSpinBox()
        self.every.setRange(60, 30 * 86_400)
        self.every.setValue(3600)
        self.every.setSuffix(" s")
        self.skip_if_running = QCheckBox("Skip if the previous run is still going")
        self.stop_after = QSpinBox()
        self.stop_after.setRange(0, 7 * 86_400)
        self.stop_after.setSuffix(" s")
        self.stop_after.setSpecialValueText("No limit")
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Run:", self.frequency)
        form.addRow("At:", self.time)
        form.addRow("Minute past the hour:", self.minute)
        form.addRow("On:", self.days_row)
        form.addRow("Every:", self.every)
        form.addRow(self.skip_if_running)
        form.addRow("Stop after:", self.stop_after)
        self._form = form
        self._schedule_id = ""
        self.frequency.currentIndexChanged.connect(self._update)
        self._update()

    def set_schedule(self, schedule: Schedule | None) -> None:
        self._schedule_id = schedule.schedule_id if schedule else ""
        if schedule is None:
            self.frequency.setCurrentIndex(0)
            return
        self.frequency.setCurrentIndex(self.frequency.findData(schedule.frequency))
        self.time.setTime(QTime(schedule.hour, schedule.minute))
        self.minute.setValue(schedule.minute)
        for day, box in enumerate(self.days):
            box.setChecked(day in schedule.weekdays)
        if schedule.every_seconds:
            self.every.setValue(schedule.every_seconds)
        self.skip_if_running.setChecked(schedule.skip_if_running)
        self.stop_after.setValue(schedule.stop_after_seconds)
        self._update()

    def set_daily(self, hour: int, minute: int) -> None:
        self.frequency.setCurrentIndex(self.frequency.findData(Frequency.DAILY))
        self.time.setTime(QTime(hour, minute))

    def schedule(self, item_id: str, vault_id: str) -> Schedule | None:
        kind = self.frequency.currentData()
        if not isinstance(kind, Frequency):
            return None
        time = self.time.time()
        hour, minute = time.hour(), time.minute()
        if kind is Frequency.HOURLY:
            hour, minute = 0, self.minute.value()
        weekdays = tuple(d for d, box in enumerate(self.days) if box.isChecked())
        return Schedule(
            schedule_id=self._schedule_id,
            item_id=item_id,
            vault_id=vault_id,
            frequency=kind,
            hour=hour if kind in (Frequency.DAILY, Frequency.WEEKLY) else 0,
            minute=minute if kind is not Frequency.PERIODIC else 0,
            weekdays=weekdays if kind is Frequency.WEEKLY else (),
            every_seconds=self.every.value() if kind is Frequency.PERIODIC else 0,
            skip_if_running=self.skip_if_running.isChecked(),
            stop_after_seconds=self.stop_after.value(),
        )

    def problem(self) -> str:
        if self.frequency.currentData() is Frequency.WEEKLY and not any(
            box.isChecked() for box in self.days
        ):
            return "A weekly schedule needs at least one day."
        return ""

    def _update(self) -> None:
        kind = self.frequency.currentData()
        self._form.setRowVisible(self.time, kind in (Frequency.DAILY, Frequency.WEEKLY))
        self._form.setRowVisible(self.minute, kind is Frequency.HOURLY)
        self._form.setRowVisible(self.every, kind is Frequency.PERIODIC)
        self._form.setRowVisible(self.days_row, kind is Frequency.WEEKLY)
        self._form.setRowVisible(self.skip_if_running, kind is not None)
        self._form.setRowVisible(self.stop_after, kind is not None)
