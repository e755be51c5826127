"""``HoverHeader``: a section title whose Add button appears while the mouse is over it."""

from __future__ import annotations

from PyQt6.QtCore import QEvent, pyqtSignal
from PyQt6.QtGui import QEnterEvent, QFont
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget


class HoverHeader(QWidget):
    add_clicked = pyqtSignal()

    def __init__(self, title: str, add_tooltip: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        self.title = QLabel(title)
        font = QFont(self.title.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.title.setFont(font)
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip(add_tooltip)
        self.add_button.clicked.connect(self.add_clicked)
        # Keep the space reserved so the layout does not jump when the button shows.
        policy = self.add_button.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.add_button.setSizePolicy(policy)
        self.add_button.hide()
        layout.addWidget(self.title)
        layout.addWidget(self.add_button)
        layout.addStretch(1)

    def enterEvent(self, event: QEnterEvent | None) -> None:
        self.add_button.show()
        super().enterEvent(event)

    def leaveEvent(self, event: QEvent | None) -> None:
        self.add_button.hide()
        super().leaveEvent(event)
