"""``SectionHeader``: a section title with its always-visible Add button beside it
("Protected Items  [Add Protected Item]")."""

from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QHBoxLayout, QPushButton, QWidget

from comet.gui.theme import SPACING, title_label


class SectionHeader(QWidget):
    add_clicked = pyqtSignal()

    def __init__(
        self, title: str, add_label: str, add_tooltip: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, SPACING // 2)
        layout.setSpacing(SPACING * 2)
        self.title = title_label(title)
        self.add_button = QPushButton(add_label)
        self.add_button.setToolTip(add_tooltip)
        self.add_button.clicked.connect(self.add_clicked)
        layout.addWidget(self.title)
        layout.addStretch(1)
        layout.addWidget(self.add_button)
