"""``RestoreWizard``: the six pages, in order, and starting the restore job."""

from __future__ import annotations

from dataclasses import replace

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QWidget,
    QWizard,
)

from comet.gui.agent_client import AgentClient, ApiError
from comet.gui.records import (
    Job,
    Profile,
    RestoreSpec,
    RestoreType,
)
from comet.gui.restore_wizard.destination_page import DestinationPage
from comet.gui.restore_wizard.files_page import FilesPage
from comet.gui.restore_wizard.item_page import ItemPage
from comet.gui.restore_wizard.run_page import RunPage
from comet.gui.restore_wizard.type_page import TypePage
from comet.gui.restore_wizard.vault_page import VaultPage


class RestoreWizard(QWizard):
    """Emits ``job_started`` for the restore (and for snapshot deletions)."""

    job_started = pyqtSignal(object)  # Job

    VAULT, ITEM, FILES, TYPE, DESTINATION, RUN = range(6)

    def __init__(
        self,
        client: AgentClient,
        profile: Profile,
        *,
        device_names: dict[str, str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.profile = profile
        self.device_names = device_names or {}
        self.setWindowTitle("Restore")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.resize(760, 560)
        self.vault_page = VaultPage(profile.vaults)
        self.item_page = ItemPage(self)
        self.files_page = FilesPage(self)
        self.type_page = TypePage(self)
        self.destination_page = DestinationPage(self)
        self.run_page = RunPage(self)
        for page_id, page in enumerate(
            (
                self.vault_page,
                self.item_page,
                self.files_page,
                self.type_page,
                self.destination_page,
                self.run_page,
            )
        ):
            self.setPage(page_id, page)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Restore")
        self.finished.connect(self.item_page.browser.close_all)  # unmount what was browsed

    def spec(self) -> RestoreSpec:
        vault = self.vault_page.vault()
        snapshot = self.item_page.snapshot()
        kind = self.type_page.restore_type()
        needs_path = self.destination_page.needs_path()
        spec = RestoreSpec(
            vault_id=vault.vault_id if vault else "",
            snapshot_id=snapshot.snapshot_id if snapshot else "",
            item_id=snapshot.item_id if snapshot else "",
            type=kind,
            destination=self.destination_page.path.text().strip() if needs_path else "",
            paths=self.files_page.selected_paths(),
        )
        if kind is RestoreType.FILES:
            spec = replace(
                spec,
                original_paths=self.type_page.original_paths.isChecked(),
                overwrite=self.type_page.overwrite.isChecked(),
            )
        elif kind in (RestoreType.PROGRAM_PER_FILE, RestoreType.PROGRAM_ARCHIVE):
            spec = replace(spec, program_command=self.type_page.command.text().strip())
        elif kind is RestoreType.ARCHIVE_FILE:
            spec = replace(
                spec,
                archive_format=self.type_page.archive_format(),
                overwrite=self.type_page.overwrite.isChecked(),
            )
        return spec

    def accept(self) -> None:
        finish = self.button(QWizard.WizardButton.FinishButton)
        if finish is not None:
            finish.setEnabled(False)
        self.run_page.error.clear()
        self.client.start_restore(self.spec()).then(self._started, self._failed)

    def _started(self, job: Job) -> None:
        # The agent leaves item_id empty when a snapshot id was given: say which it is.
        self.job_started.emit(job if job.item_id else replace(job, item_id=self.spec().item_id))
        super().accept()

    def _failed(self, error: ApiError) -> None:
        finish = self.button(QWizard.WizardButton.FinishButton)
        if finish is not None:
            finish.setEnabled(True)
        self.run_page.error.setText(f"The restore did not start: {error.message}")
