"""``comet-gui --screenshots DIR`` against a live agent: one real PNG per screen."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from PyQt6.QtGui import QImage

from tests.fixtures.processes import BIN, AgentProcess
from tests.gui.driving import vault_and_item

SCREENS = {
    "01-login",
    "02-backup-tab",
    "03-backup-now-wizard",
    "04-restore-1-vault",
    "05-restore-2-item",
    "05-restore-2-item-snapshots",
    "05-restore-2-search",
    "06-restore-3-files",
    "07-restore-4-type",
    "08-restore-5-destination",
    "09-restore-6-run",
    "10-history-filter",
    "11-job-log",
    "12-account-tab",
    "13-account-dialog",
    "13-change-password",
    "13-two-factor",
    "14-vault-editor",
    "14-vault-editor-existing",
    "15-item-editor",
    "15-item-editor-schedule",
    "16-import-dialog",
    "17-tray-menu",
}


def test_screenshots_render_every_screen(alice: AgentProcess, short_tmp: Path) -> None:
    vault_and_item(alice, short_tmp)

    out = short_tmp / "shots"
    result = subprocess.run(
        [str(BIN / "comet-gui"), "--socket", str(alice.socket), "--screenshots", str(out)],
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert {p.stem for p in out.glob("*.png")} == SCREENS
    for png in out.glob("*.png"):
        assert png.stat().st_size > 5_000, png.name
        image = QImage(str(png))
        assert image.width() >= 200 and image.height() >= 80, png.name
    main = QImage(str(out / "02-backup-tab.png"))
    assert (main.width(), main.height()) == (1024, 700)
