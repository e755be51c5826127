"""``RetentionForm``: edit a simple retention policy (keep last N, keep within N days,
one per day/week/month for N). No rule set means keep everything."""

from __future__ import annotations

from PyQt6.QtWidgets import QFormLayout, QLabel, QSpinBox, QWidget

from comet.gui.records import Retention, RetentionKind
from comet.gui.theme import tidy


class RetentionForm(QWidget):
    """A spin box per rule; 0 switches a rule off. Custom policies are shown read-only
    and kept as they are."""

    def __init__(self, retention: Retention | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        tidy(form)
        form.setContentsMargins(0, 0, 0, 0)
        self.note = QLabel()
        self.note.setWordWrap(True)
        form.addRow(self.note)
        self.counts: dict[RetentionKind, QSpinBox] = {}
        for kind in RetentionKind:
            box = QSpinBox()
            box.setRange(0, 100_000)
            box.setSpecialValueText("Off")
            box.valueChanged.connect(self._update_note)
            self.counts[kind] = box
            form.addRow(f"{kind.label}:", box)
        self._custom = False
        self.set_retention(retention or Retention())

    def set_retention(self, retention: Retention) -> None:
        self._custom = retention.custom
        for kind, box in self.counts.items():
            box.setValue(retention.count(kind))
            box.setEnabled(not retention.custom)
        self._update_note()

    def retention(self) -> Retention:
        if self._custom:
            return Retention(custom=True)
        rules = tuple((k, box.value()) for k, box in self.counts.items() if box.value() > 0)
        return Retention(rules=rules)

    def _update_note(self) -> None:
        if self._custom:
            self.note.setText(
                "These retention rules were set with another tool and cannot be edited "
                "here; they are kept as they are."
            )
        elif self.retention().keeps_everything:
            self.note.setText("Every rule is off: every snapshot is kept.")
        else:
            self.note.setText("Snapshots no rule keeps are deleted by the retention pass.")
