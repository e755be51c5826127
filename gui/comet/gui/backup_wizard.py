"""``BackupNowWizard``: pick the Storage Vault to back a Protected Item up to, then
start the job. The wizard stays open and shows the reason if the agent refuses."""

from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QLabel,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from comet.gui.agent_client import AgentClient, ApiError
from comet.gui.records import Job, ProtectedItem, StorageVault
from comet.gui.theme import Tone, set_tone
from comet.gui.vault_choice import VaultChoicePage


class ConfirmPage(QWizardPage):
    def __init__(self, item: ProtectedItem, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.item = item
        self.setTitle("Back up now")
        self.setSubTitle("Check what will be backed up, then start.")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.error = QLabel()
        set_tone(self.error, Tone.ERROR)
        self.error.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.error)
        layout.addStretch(1)

    def initializePage(self) -> None:
        wizard = self.wizard()
        vault = wizard.vault_page.vault() if isinstance(wizard, BackupNowWizard) else None
        self.summary.setText(
            f"Back up “{self.item.name}” to “{vault.name if vault else '?'}” now. "
            "Progress appears under the item on the Backup tab."
        )
        self.error.clear()


class BackupNowWizard(QWizard):
    started = pyqtSignal(object)  # Job

    def __init__(
        self,
        client: AgentClient,
        item: ProtectedItem,
        vaults: tuple[StorageVault, ...],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.item = item
        self.setWindowTitle(f"Backup Now — {item.name}")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.resize(640, 420)
        self.vault_page = VaultChoicePage(
            vaults, "Destination", "Choose the Storage Vault to back up to."
        )
        self.confirm_page = ConfirmPage(item)
        self.addPage(self.vault_page)
        self.addPage(self.confirm_page)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Back up now")

    def accept(self) -> None:
        vault = self.vault_page.vault()
        if vault is None:
            return
        self.button(QWizard.WizardButton.FinishButton).setEnabled(False)  # type: ignore[union-attr]
        self.client.start_backup(self.item.item_id, vault.vault_id).then(
            self._on_started, self._on_failed
        )

    def _on_started(self, job: Job) -> None:
        self.started.emit(job)
        super().accept()

    def _on_failed(self, error: ApiError) -> None:
        self.button(QWizard.WizardButton.FinishButton).setEnabled(True)  # type: ignore[union-attr]
        self.confirm_page.error.setText(f"The backup did not start: {error.message}")
