"""``comet-gui --screenshots DIR``: drive the real windows against the running agent
and save one PNG per main screen. Works offscreen (``QT_QPA_PLATFORM=offscreen``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QEventLoop, QPoint, Qt, QTimer
from PyQt6.QtGui import QPainter, QPixmap
from PyQt6.QtWidgets import QApplication, QTreeWidgetItem, QWidget

from comet.gui.agent_client import AgentClient, ApiError, Pending
from comet.gui.backup_wizard import BackupNowWizard
from comet.gui.login_window import LoginWindow
from comet.gui.main_window import MainWindow
from comet.gui.records import AgentStatus, ItemType, ProtectedItem, TotpEnrolment
from comet.gui.restore_wizard import LOADING, RestoreWizard

WAIT_SECONDS = 20.0


def settle(seconds: float = 0.15) -> None:
    """Let queued signals, layouts and paints happen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.01)


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        if predicate():
            return True
        time.sleep(0.01)
    return False


def wait_for(pending: Pending, timeout: float = WAIT_SECONDS) -> Any:
    """The call's result, or its ApiError."""
    box: list[Any] = []
    loop = QEventLoop()

    def answer(value: object) -> None:
        box.append(value)
        loop.quit()

    pending.finished.connect(answer)
    pending.failed.connect(answer)
    QTimer.singleShot(int(timeout * 1000), loop.quit)
    loop.exec()
    return box[0] if box else ApiError(pending.operation, "DEADLINE_EXCEEDED", "no answer")


def _unfolded(node: QTreeWidgetItem) -> bool:
    child = node.child(0)
    return child is None or child.text(0) != LOADING


class ScreenshotRun:
    def __init__(
        self, client: AgentClient, out_dir: Path, size: tuple[int, int] = (1024, 700)
    ) -> None:
        self.client = client
        self.out_dir = out_dir
        self.size = size
        self.saved: list[Path] = []

    def save(self, widget: QWidget, name: str) -> None:
        settle()
        path = self.out_dir / f"{name}.png"
        if not widget.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        self.saved.append(path)

    def run(self) -> int:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        status = wait_for(self.client.status())
        if isinstance(status, ApiError):
            print(f"comet-gui: {status.message}", file=sys.stderr)
            status = AgentStatus()
        self.login_screen(status)
        main = MainWindow(self.client, status)
        main.resize(*self.size)
        main.show()
        wait_until(lambda: main.profile is not None)
        wait_until(lambda: main.history_tab.model.rowCount() > 0, timeout=5)
        settle(0.5)
        self.backup_screens(main)
        self.restore_screens(main)
        self.history_screens(main)
        self.account_screens(main)
        self.editor_screens(main)
        self.tray_screen(main)
        main._poll.stop()
        main.hide()
        for path in self.saved:
            print(path)
        return 0

    def login_screen(self, status: AgentStatus) -> None:
        login = LoginWindow(self.client, status, username=status.username)
        login.advanced.setChecked(True)
        login.resize(*self.size)
        login.show()
        self.save(login, "01-login")
        login.close()

    def backup_screens(self, main: MainWindow) -> None:
        main.tabs.setCurrentWidget(main.backup_tab)
        self.save(main, "02-backup-tab")
        wizard = main.backup_tab.open_backup_wizard()
        if wizard is None:
            item = ProtectedItem("", "(no Protected Item yet)", ItemType.FILES)
            vaults = main.profile.vaults if main.profile else ()
            wizard = BackupNowWizard(self.client, item, vaults, main)
            wizard.open()
        self.save(wizard, "03-backup-now-wizard")
        wizard.reject()

    def restore_screens(self, main: MainWindow) -> None:
        wizard = main.open_restore_wizard()
        if wizard is None:
            return
        self.save(wizard, "04-restore-1-vault")
        self._next(wizard)
        wait_until(lambda: not wizard.item_page.loading)
        self.save(wizard, "05-restore-2-item")
        search = wizard.item_page.open_search()
        if search is not None:
            search.name.setText("*.txt")
            search.search()
            wait_until(lambda: search.search_button.isEnabled(), timeout=10)
            self.save(search, "05-restore-2-search")
            search.reject()
        top = wizard.item_page.tree.topLevelItem(0)
        if top is not None:
            top.setExpanded(True)
            self.save(wizard, "05-restore-2-item-snapshots")
        self._next(wizard)
        wait_until(lambda: wizard.files_page.browsable is not None)
        if wizard.files_page.choose.isEnabled():
            wizard.files_page.choose.setChecked(True)
            first = wizard.files_page.tree.topLevelItem(0)
            if first is not None:
                first.setExpanded(True)
                wait_until(lambda: _unfolded(first), timeout=5)
        self.save(wizard, "06-restore-3-files")
        wizard.files_page.all_files.setChecked(True)
        self._next(wizard)
        self.save(wizard, "07-restore-4-type")
        self._next(wizard)
        wizard.destination_page.path.setText(str(Path.home() / "restored"))
        self.save(wizard, "08-restore-5-destination")
        self._next(wizard)
        self.save(wizard, "09-restore-6-run")
        wizard.reject()

    @staticmethod
    def _next(wizard: RestoreWizard) -> None:
        wizard.next()
        settle()

    def history_screens(self, main: MainWindow) -> None:
        main.tabs.setCurrentWidget(main.history_tab)
        main.history_tab.set_filter_visible(True)
        wait_until(lambda: main.history_tab.proxy.rowCount() > 0, timeout=5)
        self.save(main, "10-history-filter")
        jobs = main.history_tab.visible_jobs()
        if jobs:
            dialog = main.history_tab.open_log(jobs[0])
            wait_until(lambda: dialog.summary.text() != "Loading…")
            self.save(dialog, "11-job-log")
            dialog.reject()

    def account_screens(self, main: MainWindow) -> None:
        main.tabs.setCurrentWidget(main.account_tab)
        wait_until(lambda: main.account_tab.devices.rowCount() > 0, timeout=5)
        self.save(main, "12-account-tab")
        dialog = main.account_tab.open_account_dialog()
        self.save(dialog, "13-account-dialog")
        password = main.account_tab.open_password_dialog()
        self.save(password, "13-change-password")
        password.reject()
        totp = main.account_tab.open_totp_dialog()
        # A made-up secret, shown locally: a screenshot must not start a real enrolment.
        sample = "JBSWY3DPEHPK3PXP"
        uri = f"otpauth://totp/Comet:example?secret={sample}&issuer=Comet"
        totp.show_enrolment(TotpEnrolment(sample, uri))
        totp.adjustSize()
        self.save(totp, "13-two-factor")
        totp.reject()
        dialog.reject()
        importer = main.account_tab.open_import_dialog()
        wait_until(lambda: "Looking" not in importer.message.text(), timeout=5)
        self.save(importer, "16-import-dialog")
        importer.reject()

    def tray_screen(self, main: MainWindow) -> None:
        """The tray menu with its "Back up now" submenu open, side by side."""
        menu, submenu = main.tray.menu, main.tray.backup_menu
        menu.popup(QPoint(0, 0))
        settle()
        action = menu.actions()[2]
        menu.setActiveAction(action)
        submenu.popup(QPoint(menu.width(), menu.actionGeometry(action).top()))
        settle()
        both = QPixmap(menu.width() + submenu.width(), max(menu.height(), submenu.height()))
        both.fill(Qt.GlobalColor.transparent)
        painter = QPainter(both)
        painter.drawPixmap(0, 0, menu.grab())
        painter.drawPixmap(menu.width(), menu.actionGeometry(action).top(), submenu.grab())
        painter.end()
        path = self.out_dir / "17-tray-menu.png"
        if not both.save(str(path)):
            raise OSError(f"could not write {path}")
        self.saved.append(path)
        submenu.hide()
        menu.hide()

    def editor_screens(self, main: MainWindow) -> None:
        vaults = main.profile.vaults if main.profile else ()
        vault_editor = main.account_tab.open_vault_editor(None)
        vault_editor.name.setText("Offsite disk")
        vault_editor.local_path.setText("/mnt/offsite/comet")
        self.save(vault_editor, "14-vault-editor")
        vault_editor.reject()
        if vaults:
            existing = main.account_tab.open_vault_editor(vaults[0])
            self.save(existing, "14-vault-editor-existing")
            existing.reject()
        items = main.backup_tab.model.rows()
        item_editor = main.backup_tab.open_editor(items[0] if items else None)
        self.save(item_editor, "15-item-editor")
        item_editor.tabs.setCurrentIndex(1)
        if vaults:
            item_editor.schedule_form.set_daily(2, 30)
        self.save(item_editor, "15-item-editor-schedule")
        item_editor.reject()
