"""Page 6: the running restore job and its progress."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtWidgets import (
    QFormLayout,
    QLabel,
    QWizardPage,
)

from comet.gui import units
from comet.gui.records import RestoreType
from comet.gui.restore_wizard.item_page import ItemPage
from comet.gui.theme import error_label

if TYPE_CHECKING:
    from comet.gui.restore_wizard.wizard import RestoreWizard


class RunPage(QWizardPage):
    def __init__(self, wizard: RestoreWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setTitle("Restore")
        self.setSubTitle("Check what will be restored, then start.")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.error = error_label(hidden=False)
        form = QFormLayout(self)
        form.addRow(self.summary)
        form.addRow(self.error)

    def initializePage(self) -> None:
        self.error.clear()
        spec = self.owner.spec()
        snapshot = self.owner.item_page.snapshot()
        vault = self.owner.vault_page.vault()
        what = f"{len(spec.paths)} selected paths" if spec.paths else "all files"
        where = {
            RestoreType.FILES: f"into {spec.destination}"
            if spec.destination
            else "to their original paths",
            RestoreType.SIMULATE: "as a simulation (nothing is written)",
            RestoreType.PROGRAM_PER_FILE: f"to the command {spec.program_command!r}, per file",
            RestoreType.PROGRAM_ARCHIVE: f"to the command {spec.program_command!r}, as one archive",
            RestoreType.ARCHIVE_FILE: f"as a {spec.archive_format.extension} file "
            f"{spec.destination}",
        }[spec.type]
        self.summary.setText(
            f"Restore {what} of “{ItemPage._label(snapshot) if snapshot else '?'}” "
            f"(snapshot of {units.when(snapshot.time) if snapshot else '?'}) from "
            f"“{vault.name if vault else '?'}” {where}.\n\n"
            "The restore runs in the background; its progress appears in the main window."
        )
