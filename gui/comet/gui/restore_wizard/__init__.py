"""``RestoreWizard``: Storage Vault → Protected Item and snapshot → files → restore
type → destination → run. Snapshots can also be deleted from the item page.

One module per page (vault_page … run_page); ``wizard`` puts them together.
"""

from __future__ import annotations

from comet.gui.restore_wizard.common import LOADING, RECORD
from comet.gui.restore_wizard.destination_page import DestinationPage
from comet.gui.restore_wizard.files_page import FilesPage
from comet.gui.restore_wizard.item_page import ItemPage
from comet.gui.restore_wizard.run_page import RunPage
from comet.gui.restore_wizard.type_page import TypePage
from comet.gui.restore_wizard.vault_page import VaultPage
from comet.gui.restore_wizard.wizard import RestoreWizard

__all__ = [
    "LOADING",
    "RECORD",
    "DestinationPage",
    "FilesPage",
    "ItemPage",
    "RestoreWizard",
    "RunPage",
    "TypePage",
    "VaultPage",
]
