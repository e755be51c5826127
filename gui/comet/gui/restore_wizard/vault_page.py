"""Page 1: which Storage Vault to restore from."""

from __future__ import annotations

from PyQt6.QtWidgets import (
    QVBoxLayout,
    QWizardPage,
)

from comet.gui.models import VaultTableModel
from comet.gui.records import StorageVault
from comet.gui.theme import record_table


class VaultPage(QWizardPage):
    def __init__(self, vaults: tuple[StorageVault, ...]) -> None:
        super().__init__()
        self.setTitle("Storage Vault")
        self.setSubTitle("Select the Storage Vault containing the backed-up data.")
        self.model = VaultTableModel(self)
        self.model.set_rows(vaults)
        self.table = record_table(self.model, [VaultTableModel.LOCATION])
        selection = self.table.selectionModel()
        assert selection is not None
        selection.selectionChanged.connect(self.completeChanged)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        if vaults:
            self.table.selectRow(0)

    def vault(self) -> StorageVault | None:
        selection = self.table.selectionModel()
        rows = selection.selectedRows() if selection is not None else []
        return self.model.record(rows[0].row()) if rows else None

    def select_vault(self, vault_id: str) -> None:
        for row, vault in enumerate(self.model.rows()):
            if vault.vault_id == vault_id:
                self.table.selectRow(row)

    def isComplete(self) -> bool:
        return self.vault() is not None
