"""Page 1: which Storage Vault to restore from."""

from __future__ import annotations

from comet.gui.records import StorageVault
from comet.gui.vault_choice import VaultChoicePage


class VaultPage(VaultChoicePage):
    def __init__(self, vaults: tuple[StorageVault, ...]) -> None:
        super().__init__(
            vaults, "Storage Vault", "Select the Storage Vault containing the backed-up data."
        )
