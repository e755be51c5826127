"""Page 4: restore as files, as an archive, into a program, or only simulate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QLineEdit,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from comet.gui.records import (
    ArchiveFormat,
    RestoreType,
)

if TYPE_CHECKING:
    from comet.gui.restore_wizard.wizard import RestoreWizard


class TypePage(QWizardPage):
    """How to restore: files and folders, simulate, program input or an archive file."""

    def __init__(self, wizard: RestoreWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setTitle("Restore type")
        self.setSubTitle("Choose how the restored data is delivered.")
        self.files = QRadioButton("Files and Folders")
        self.original_paths = QCheckBox("Restore to original paths")
        self.overwrite = QCheckBox("Overwrite existing files")
        self.overwrite.setToolTip(
            "Checked: files that already exist are overwritten. Unchecked: they are skipped."
        )
        self.simulate = QRadioButton("Simulate restore only")
        self.simulate.setToolTip("Download and reassemble everything, but write nothing")
        self.program = QRadioButton("Program Input")
        self.command = QLineEdit()
        self.command.setPlaceholderText("Command receiving the data on standard input")
        self.per_file = QRadioButton("Run the command once per file")
        self.as_archive = QRadioButton("Send all files as one archive stream")
        self.per_file.setChecked(True)
        program_group = QButtonGroup(self)
        program_group.addButton(self.per_file)
        program_group.addButton(self.as_archive)
        self.archive = QRadioButton("Compressed archive file")
        self.format = QComboBox()
        for label, fmt in (
            ("zip (compressed)", ArchiveFormat.ZIP),
            ("tar (uncompressed)", ArchiveFormat.TAR),
            ("tar.gz (compressed)", ArchiveFormat.TAR_GZ),
            ("tar.zst (compressed)", ArchiveFormat.TAR_ZST),
            ("sqfs (compressed, mountable)", ArchiveFormat.SQFS),
        ):
            self.format.addItem(label, fmt)
        kinds = QButtonGroup(self)
        for button in (self.files, self.simulate, self.program, self.archive):
            kinds.addButton(button)
            button.toggled.connect(self._update)
        self.files.setChecked(True)
        self.command.textChanged.connect(self.completeChanged)

        layout = QVBoxLayout(self)
        layout.addWidget(self.files)
        layout.addWidget(self._indented(self.original_paths, self.overwrite))
        layout.addWidget(self.simulate)
        layout.addWidget(self.program)
        layout.addWidget(self._indented(self.command, self.per_file, self.as_archive))
        layout.addWidget(self.archive)
        layout.addWidget(self._indented(self.format))
        layout.addStretch(1)

    @staticmethod
    def _indented(*widgets: QWidget) -> QWidget:
        box = QWidget()
        inner = QVBoxLayout(box)
        inner.setContentsMargins(24, 0, 0, 0)
        for widget in widgets:
            inner.addWidget(widget)
        return box

    def initializePage(self) -> None:
        snapshot = self.owner.item_page.snapshot()
        has_paths = bool(snapshot and snapshot.has_original_paths)
        self.original_paths.setProperty("available", has_paths)
        if not has_paths:
            self.original_paths.setChecked(False)
            self.original_paths.setToolTip(
                "Not available: this snapshot holds no original path information"
            )
        else:
            self.original_paths.setToolTip("Put every file back where it was backed up from")
        self._update()

    def _update(self) -> None:
        available = bool(self.original_paths.property("available"))
        self.original_paths.setEnabled(self.files.isChecked() and available)
        # Files and folders, or an archive file that already exists: never a surprise.
        self.overwrite.setEnabled(self.files.isChecked() or self.archive.isChecked())
        for widget in (self.command, self.per_file, self.as_archive):
            widget.setEnabled(self.program.isChecked())
        self.format.setEnabled(self.archive.isChecked())
        self.completeChanged.emit()

    def restore_type(self) -> RestoreType:
        if self.simulate.isChecked():
            return RestoreType.SIMULATE
        if self.program.isChecked():
            return (
                RestoreType.PROGRAM_ARCHIVE
                if self.as_archive.isChecked()
                else RestoreType.PROGRAM_PER_FILE
            )
        if self.archive.isChecked():
            return RestoreType.ARCHIVE_FILE
        return RestoreType.FILES

    def archive_format(self) -> ArchiveFormat:
        return ArchiveFormat(self.format.currentData())

    def set_archive_format(self, fmt: ArchiveFormat) -> None:
        self.format.setCurrentIndex(self.format.findData(fmt))

    def isComplete(self) -> bool:
        return not self.program.isChecked() or bool(self.command.text().strip())
