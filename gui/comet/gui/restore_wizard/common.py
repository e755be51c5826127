"""What the pages share: the role holding a record, the placeholder of an unlisted folder."""

from __future__ import annotations

from PyQt6.QtCore import Qt

RECORD = Qt.ItemDataRole.UserRole
LOADING = "Loading…"
