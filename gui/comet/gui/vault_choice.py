"""``VaultChoicePage``: a wizard page listing the Storage Vaults to pick one from (the
Backup Now wizard's destination, the Restore wizard's source). A double-click goes on."""

from __future__ import annotations

from PyQt6.QtWidgets import QLabel, QVBoxLayout, QWidget, QWizardPage

from comet.gui.models import VaultTableModel
from comet.gui.records import StorageVault
from comet.gui.theme import record_table

NO_VAULT = "There is no Storage Vault yet: add one on the Account tab."


class VaultChoicePage(QWizardPage):
    def __init__(
        self,
        vaults: tuple[StorageVault, ...],
        title: str,
        subtitle: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setTitle(title)
        self.setSubTitle(subtitle)
        self.model = VaultTableModel(self)
        self.model.set_rows(vaults)
        self.table = record_table(self.model, [VaultTableModel.LOCATION])
        selection = self.table.selectionModel()
        assert selection is not None
        selection.selectionChanged.connect(self.completeChanged)
        self.table.doubleClicked.connect(lambda _index: self._next())
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        if vaults:
            self.table.selectRow(0)
        else:
            layout.addWidget(QLabel(NO_VAULT))

    def _next(self) -> None:
        wizard = self.wizard()
        if wizard is not None:
            wizard.next()

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
