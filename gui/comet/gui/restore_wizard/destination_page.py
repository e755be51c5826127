"""Page 5: where the files go and what happens to existing ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from comet.gui.records import RestoreType

if TYPE_CHECKING:
    from comet.gui.restore_wizard.wizard import RestoreWizard


class DestinationPage(QWizardPage):
    """A folder (Files and Folders) or a file (archive); nothing for the other types."""

    def __init__(self, wizard: RestoreWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setTitle("Destination")
        self.setSubTitle("Where the restored data goes.")
        self.explain = QLabel()
        self.explain.setWordWrap(True)
        self.path = QLineEdit()
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self._browse)
        self.path.textChanged.connect(self.completeChanged)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(self.browse)
        self.row = QWidget()
        self.row.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.addWidget(self.explain)
        layout.addWidget(self.row)
        layout.addStretch(1)

    def needs_path(self) -> bool:
        kind = self.owner.type_page.restore_type()
        if kind is RestoreType.FILES:
            return not self.owner.type_page.original_paths.isChecked()
        return kind is RestoreType.ARCHIVE_FILE

    def initializePage(self) -> None:
        kind = self.owner.type_page.restore_type()
        self.row.setVisible(self.needs_path())
        if kind is RestoreType.FILES and self.needs_path():
            self.explain.setText("Select the folder to restore into.")
            self.path.setPlaceholderText("/home/me/restored")
        elif kind is RestoreType.ARCHIVE_FILE:
            ext = self.owner.type_page.archive_format().extension
            self.explain.setText(f"Select the archive file to write (.{ext}).")
            self.path.setPlaceholderText(f"/home/me/restore.{ext}")
        elif kind is RestoreType.FILES:
            self.explain.setText("The files go back to the paths they were backed up from.")
        elif kind is RestoreType.SIMULATE:
            self.explain.setText("A simulated restore writes nothing: no destination is needed.")
        else:
            self.explain.setText(
                f"The data is sent to “{self.owner.type_page.command.text().strip()}”."
            )

    def _browse(self) -> None:
        kind = self.owner.type_page.restore_type()
        if kind is RestoreType.ARCHIVE_FILE:
            ext = self.owner.type_page.archive_format().extension
            chosen, _ = QFileDialog.getSaveFileName(
                self, "Save the archive as", f"restore.{ext}", f"Archive (*.{ext})"
            )
        else:
            chosen = QFileDialog.getExistingDirectory(self, "Restore into this folder")
        if chosen:
            self.path.setText(chosen)

    def isComplete(self) -> bool:
        return not self.needs_path() or self.path.text().strip().startswith("/")
