"""``ScheduleForm``: when one Protected Item is backed up to one Storage Vault, and how each
run behaves: every option of the agent's scheduler.

*When*: once, daily, hourly, weekly, monthly or every N minutes (with an offset); the days
it may run on, a time window, a random delay, and what happens at boot. *Each run*: skip
if the previous one is still going, a time limit, retries, an upload limit and when the
vault's retention pass follows."""

from __future__ import annotations

from PyQt6.QtCore import QDateTime, QTime
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QTimeEdit,
    QVBoxLayout,
    QWidget,
)

from comet.gui.records import Frequency, RetentionTiming, Schedule
from comet.gui.theme import SPACING, tidy

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

TIME_UNITS = (("seconds", 1), ("minutes", 60), ("hours", 3600), ("days", 86_400))
RATE_UNITS = (("B/s", 1), ("KiB/s", 1024), ("MiB/s", 1024 * 1024))

MAX_RANDOM_DELAY = 5 * 3600  # the agent caps larger delays at five hours


class UnitSpin(QWidget):
    """A whole number of some unit (seconds shown as minutes, bytes/s as MiB/s…). A value
    is shown in the largest unit that holds it exactly, so nothing is rounded away."""

    def __init__(
        self,
        units: tuple[tuple[str, int], ...],
        *,
        none: str = "",
        maximum: int = 2**31 - 1,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._units = units
        self._maximum = maximum
        self.number = QSpinBox()
        self.number.setRange(0, 2**31 - 1)
        if none:
            self.number.setSpecialValueText(none)
        self.unit = QComboBox()
        for label, factor in units:
            self.unit.addItem(label, factor)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(SPACING // 2)
        row.addWidget(self.number, 1)
        row.addWidget(self.unit)

    def value(self) -> int:
        factor = self.unit.currentData()
        return min(self.number.value() * int(factor), self._maximum)

    def set_value(self, value: int, *, unit: str = "") -> None:
        index = 0
        for i, (label, factor) in enumerate(self._units):
            if label == unit or (not unit and value and value % factor == 0):
                index = i
        factor = self._units[index][1]
        self.unit.setCurrentIndex(index)
        self.number.setValue(value // factor)


class ScheduleForm(QWidget):
    """``schedule()`` gives None when "No schedule" is chosen."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.frequency = QComboBox()
        self.frequency.addItem("No schedule", None)
        for kind in Frequency:
            self.frequency.addItem(kind.label, kind)
        self.once_at = QDateTimeEdit(QDateTime.currentDateTime().addSecs(3600))
        self.once_at.setCalendarPopup(True)
        self.once_at.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.time = QTimeEdit(QTime(2, 0))
        self.time.setDisplayFormat("HH:mm")
        self.minute = QSpinBox()
        self.minute.setRange(0, 59)
        self.minute.setSuffix(" min past")
        self.day_of_month = QSpinBox()
        self.day_of_month.setRange(1, 31)
        self.day_of_month.setToolTip("In a shorter month, the backup runs on its last day")
        self.every = UnitSpin(TIME_UNITS[1:])
        self.every.number.setMinimum(1)
        self.every.set_value(3600, unit="hours")
        self.offset = UnitSpin(TIME_UNITS[:3], none="None")
        self.offset.setToolTip("Shift the runs from round multiples (e.g. every hour at :20)")
        self.days: list[QCheckBox] = [QCheckBox(d) for d in WEEKDAYS]
        self.days_row = QWidget()
        row = QHBoxLayout(self.days_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(SPACING)
        for box in self.days:
            row.addWidget(box)
        row.addStretch(1)
        self.use_window = QCheckBox("Only between")
        self.window_start = QTimeEdit(QTime(22, 0))
        self.window_start.setDisplayFormat("HH:mm")
        self.window_end = QTimeEdit(QTime(6, 0))
        self.window_end.setDisplayFormat("HH:mm")
        self.window_row = QWidget()
        window = QHBoxLayout(self.window_row)
        window.setContentsMargins(0, 0, 0, 0)
        window.setSpacing(SPACING)
        window.addWidget(self.use_window)
        window.addWidget(self.window_start)
        window.addWidget(QLabel("and"))
        window.addWidget(self.window_end)
        window.addStretch(1)
        self.use_window.setToolTip("Runs due outside the window wait for it to open")
        self.use_window.toggled.connect(self._update)
        self.random_delay = UnitSpin(TIME_UNITS[:3], none="None", maximum=MAX_RANDOM_DELAY)
        self.random_delay.setToolTip(
            "Start each run up to this much later, so many devices do not start together "
            "(at most 5 hours)"
        )
        self.run_at_boot = QCheckBox("Also run when the computer starts")
        self.run_at_boot_if_missed = QCheckBox("Run at start-up if a run was missed")
        self.enabled = QCheckBox("Enabled")
        self.enabled.setChecked(True)

        self.skip_if_running = QCheckBox("Skip if the previous run is still going")
        self.stop_after = UnitSpin(TIME_UNITS[1:], none="No limit")
        self.retries = QSpinBox()
        self.retries.setRange(0, 100)
        self.retries.setSpecialValueText("None")
        self.retry_delay = UnitSpin(TIME_UNITS[:3])
        self.retry_delay.set_value(300, unit="minutes")
        self.bandwidth = UnitSpin(RATE_UNITS[1:], none="Unlimited")
        self.bandwidth.set_value(0, unit="MiB/s")
        self.retention = QComboBox()
        for timing in RetentionTiming:
            self.retention.addItem(timing.label, timing)
        self.retention.setToolTip("When the vault's retention pass runs after this schedule")
        self.retries.valueChanged.connect(self._update)

        top = QFormLayout()
        tidy(top)
        top.setContentsMargins(0, 0, 0, 0)
        top.addRow("Run:", self.frequency)
        self.top = top  # the item editor puts its Storage Vault choice above "Run:"
        self.when_box = QGroupBox("When")
        when = QFormLayout(self.when_box)
        tidy(when)
        when.addRow("At:", self.once_at)
        when.addRow("At:", self.time)
        when.addRow("At:", self.minute)
        when.addRow("Day of the month:", self.day_of_month)
        when.addRow("Every:", self.every)
        when.addRow("Offset:", self.offset)
        when.addRow("On:", self.days_row)
        when.addRow("Time window:", self.window_row)
        when.addRow("Random delay:", self.random_delay)
        when.addRow("", self.run_at_boot)
        when.addRow("", self.run_at_boot_if_missed)
        when.addRow("", self.enabled)
        self.run_box = QGroupBox("Each run")
        each = QFormLayout(self.run_box)
        tidy(each)
        each.addRow("", self.skip_if_running)
        each.addRow("Stop after:", self.stop_after)
        each.addRow("Retries:", self.retries)
        each.addRow("Retry after:", self.retry_delay)
        each.addRow("Upload limit:", self.bandwidth)
        each.addRow("Retention pass:", self.retention)
        self._side = QVBoxLayout()
        self._side.setSpacing(SPACING)
        self._side.addWidget(self.run_box)
        when_column = QVBoxLayout()
        when_column.addWidget(self.when_box)
        when_column.addStretch(1)
        boxes = QHBoxLayout()
        boxes.setSpacing(SPACING)
        boxes.addLayout(when_column, 3)
        boxes.addLayout(self._side, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(SPACING)
        layout.addLayout(top)
        layout.addLayout(boxes)
        self._when = when
        self._each = each
        self._schedule_id = ""
        self.frequency.currentIndexChanged.connect(self._update)
        self._update()

    def add_beside(self, widget: QWidget) -> None:
        """Put ``widget`` under "Each run" (the item editor's retention rules)."""
        self._side.addWidget(widget)

    # ------------------------------------------------------------ in and out

    def set_schedule(self, schedule: Schedule | None) -> None:
        self._schedule_id = schedule.schedule_id if schedule else ""
        if schedule is None:
            self.frequency.setCurrentIndex(0)
            return
        self.frequency.setCurrentIndex(self.frequency.findData(schedule.frequency))
        if schedule.once_at is not None:
            self.once_at.setDateTime(QDateTime(schedule.once_at.astimezone()))
        self.time.setTime(QTime(schedule.hour, schedule.minute))
        self.minute.setValue(schedule.minute)
        self.day_of_month.setValue(schedule.day_of_month)
        if schedule.every_seconds:
            self.every.set_value(schedule.every_seconds)
        self.offset.set_value(schedule.offset_seconds)
        for day, box in enumerate(self.days):
            box.setChecked(day in schedule.weekdays)
        has_window = schedule.window_start_minute is not None
        self.use_window.setChecked(has_window)
        if has_window:
            start, end = schedule.window_start_minute or 0, schedule.window_end_minute or 0
            self.window_start.setTime(QTime(start // 60, start % 60))
            self.window_end.setTime(QTime(end // 60, end % 60))
        self.random_delay.set_value(schedule.random_delay_seconds)
        self.run_at_boot.setChecked(schedule.run_at_boot)
        self.run_at_boot_if_missed.setChecked(schedule.run_at_boot_if_missed)
        self.enabled.setChecked(schedule.enabled)
        self.skip_if_running.setChecked(schedule.skip_if_running)
        self.stop_after.set_value(schedule.stop_after_seconds)
        self.retries.setValue(schedule.retry_count)
        if schedule.retry_delay_seconds:
            self.retry_delay.set_value(schedule.retry_delay_seconds)
        self.bandwidth.set_value(schedule.bandwidth_limit_bps)
        self.retention.setCurrentIndex(self.retention.findData(schedule.retention_timing))
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
        if kind in (Frequency.ONCE, Frequency.PERIODIC):
            hour, minute = 0, 0
        weekdays = tuple(d for d, box in enumerate(self.days) if box.isChecked())
        windowed = self.use_window.isChecked() and kind is not Frequency.ONCE
        start, end = self.window_start.time(), self.window_end.time()
        once = self.once_at.dateTime().toPyDateTime().astimezone()
        return Schedule(
            schedule_id=self._schedule_id,
            item_id=item_id,
            vault_id=vault_id,
            frequency=kind,
            hour=hour,
            minute=minute,
            weekdays=weekdays if kind is not Frequency.ONCE else (),
            every_seconds=self.every.value() if kind is Frequency.PERIODIC else 0,
            skip_if_running=self.skip_if_running.isChecked(),
            stop_after_seconds=self.stop_after.value(),
            enabled=self.enabled.isChecked(),
            once_at=once.replace(second=0, microsecond=0) if kind is Frequency.ONCE else None,
            day_of_month=self.day_of_month.value() if kind is Frequency.MONTHLY else 1,
            offset_seconds=self.offset.value() if kind is Frequency.PERIODIC else 0,
            window_start_minute=start.hour() * 60 + start.minute() if windowed else None,
            window_end_minute=end.hour() * 60 + end.minute() if windowed else None,
            random_delay_seconds=self.random_delay.value() if kind is not Frequency.ONCE else 0,
            run_at_boot=self.run_at_boot.isChecked(),
            run_at_boot_if_missed=self.run_at_boot_if_missed.isChecked(),
            retry_count=self.retries.value(),
            retry_delay_seconds=self.retry_delay.value() if self.retries.value() else 0,
            bandwidth_limit_bps=self.bandwidth.value(),
            retention_timing=self.retention.currentData(),
        )

    def problem(self) -> str:
        kind = self.frequency.currentData()
        if kind is Frequency.WEEKLY and not any(box.isChecked() for box in self.days):
            return "A weekly schedule needs at least one day."
        if kind is Frequency.ONCE and self.once_at.dateTime() <= QDateTime.currentDateTime():
            return "A one-off schedule needs a time in the future."
        if (
            self.use_window.isChecked()
            and kind is not Frequency.ONCE
            and self.window_start.time() == self.window_end.time()
        ):
            return "The time window needs different start and end times."
        return ""

    # ------------------------------------------------------------ layout

    def _update(self) -> None:
        kind = self.frequency.currentData()
        scheduled = kind is not None
        self.when_box.setEnabled(scheduled)
        self.run_box.setEnabled(scheduled)
        when = self._when
        when.setRowVisible(self.once_at, kind is Frequency.ONCE)
        when.setRowVisible(
            self.time, kind in (Frequency.DAILY, Frequency.WEEKLY, Frequency.MONTHLY)
        )
        when.setRowVisible(self.minute, kind is Frequency.HOURLY)
        when.setRowVisible(self.day_of_month, kind is Frequency.MONTHLY)
        when.setRowVisible(self.every, kind is Frequency.PERIODIC)
        when.setRowVisible(self.offset, kind is Frequency.PERIODIC)
        repeating = scheduled and kind is not Frequency.ONCE
        when.setRowVisible(self.days_row, repeating)
        days_label = when.labelForField(self.days_row)
        if isinstance(days_label, QLabel):
            days_label.setText("On:" if kind is Frequency.WEEKLY else "Only on:")
        self.days_row.setToolTip("" if kind is Frequency.WEEKLY else "No day ticked: every day")
        when.setRowVisible(self.window_row, repeating)
        when.setRowVisible(self.random_delay, repeating)
        self.window_start.setEnabled(self.use_window.isChecked())
        self.window_end.setEnabled(self.use_window.isChecked())
        self._each.setRowVisible(self.retry_delay, self.retries.value() > 0)
