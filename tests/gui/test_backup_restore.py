"""A person's day with the app: add a vault and an item, back up, restore a file to a
folder and everything to a zip, read the history and a job log, run a retention pass."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from comet.gui.app import AppController
from comet.gui.main_window import MainWindow
from comet.gui.records import ArchiveFormat, Classification, Job, JobStatus
from tests.fixtures.processes import AgentProcess
from tests.gui.driving import (
    LEFT,
    SLOW,
    click_finish,
    click_next,
    double_click_row,
    unfold_to,
)


def _done(main: MainWindow, kind: Classification, count: int = 1) -> list[Job]:
    jobs = [
        j
        for j in main.history_tab.model.rows()
        if j.classification is kind and not j.status.running and j.status is not JobStatus.UNKNOWN
    ]
    return jobs if len(jobs) >= count else []


def add_vault(qtbot: QtBot, main: MainWindow, vault_dir: Path) -> None:
    main.tabs.setCurrentWidget(main.account_tab)
    header = main.account_tab.vault_header
    assert header.add_button.isVisible()
    assert header.add_button.text() == "Add Storage Vault…"
    qtbot.mouseClick(header.add_button, LEFT)
    editor = main.account_tab.editor
    assert editor is not None
    editor.name.setText("local-vault")
    editor.local_path.setText(str(vault_dir))
    qtbot.mouseClick(editor.save_button, LEFT)
    qtbot.waitUntil(lambda: main.account_tab.vaults.rowCount() == 1, timeout=SLOW)
    assert main.account_tab.editor is None  # closed after the save


def add_item(qtbot: QtBot, main: MainWindow, source: Path) -> None:
    main.tabs.setCurrentWidget(main.backup_tab)
    header = main.backup_tab.header
    assert header.add_button.isVisible()
    assert header.add_button.text() == "Add Protected Item…"
    qtbot.mouseClick(header.add_button, LEFT)
    editor = main.backup_tab.editor
    assert editor is not None
    qtbot.mouseClick(editor.save_button, LEFT)  # nothing filled in: refused inline
    assert "name" in editor.error.text()
    editor.name.setText("docs")
    editor.add_include(str(source))
    editor.exclude_globs.setPlainText("*.tmp")
    qtbot.mouseClick(editor.save_button, LEFT)
    qtbot.waitUntil(lambda: main.backup_tab.model.rowCount() == 1, timeout=SLOW)


def edit_item(qtbot: QtBot, main: MainWindow) -> None:
    double_click_row(qtbot, main.backup_tab.table, 0)
    editor = main.backup_tab.editor
    assert editor is not None
    assert editor.name.text() == "docs"
    assert editor.exclude_globs.toPlainText() == "*.tmp"
    editor.exclude_globs.setPlainText("*.tmp\n*.bak")
    qtbot.mouseClick(editor.save_button, LEFT)
    qtbot.waitUntil(lambda: main.backup_tab.editor is None, timeout=SLOW)
    qtbot.waitUntil(
        lambda: (
            main.profile is not None and main.profile.items[0].exclude_globs == ("*.tmp", "*.bak")
        ),
        timeout=SLOW,
    )


def backup_now(qtbot: QtBot, main: MainWindow) -> Job:
    tab = main.backup_tab
    tab.table.selectRow(0)
    qtbot.mouseClick(tab.backup_now, LEFT)
    wizard = tab.wizard
    assert wizard is not None
    assert wizard.vault_page.vault() is not None
    click_next(qtbot, wizard)
    assert "local-vault" in wizard.confirm_page.summary.text()
    click_finish(qtbot, wizard)
    qtbot.waitUntil(lambda: _done(main, Classification.BACKUP) != [], timeout=SLOW)
    job = _done(main, Classification.BACKUP)[0]
    assert job.status is JobStatus.SUCCESS, job.error_message
    assert job.job_id in tab.progress.rows  # progress was shown under the item
    item = tab.model.record(0)
    assert item is not None
    qtbot.waitUntil(lambda: tab.model.last_job(item.item_id) is not None)
    assert tab.model.data(tab.model.index(0, tab.model.STATUS)) == "Success"
    return job


def restore_one_file_to_folder(qtbot: QtBot, main: MainWindow, source: Path, dest: Path) -> None:
    qtbot.mouseClick(main.restore_button, LEFT)
    wizard = main.restore_wizard
    assert wizard is not None
    click_next(qtbot, wizard)  # vault (the only one is preselected)
    page = wizard.item_page
    qtbot.waitUntil(lambda: page.tree.topLevelItemCount() == 1, timeout=SLOW)
    top = page.tree.topLevelItem(0)
    assert top is not None and top.text(0) == "docs"
    assert top.childCount() == 1  # unfolds to its one snapshot
    click_next(qtbot, wizard)
    files = wizard.files_page
    qtbot.waitUntil(lambda: files.browsable is not None, timeout=SLOW)
    if files.browsable:
        files.choose.setChecked(True)
        assert not wizard.button(wizard.WizardButton.NextButton).isEnabled()  # type: ignore[union-attr]
        node = unfold_to(qtbot, files, str(source / "keep.txt"))
        node.setCheckState(0, Qt.CheckState.Checked)
        assert files.selected_paths() == (str(source / "keep.txt"),)
    else:
        assert not files.choose.isEnabled() and "newer agent" in files.choose.toolTip()
    click_next(qtbot, wizard)
    kinds = wizard.type_page
    assert kinds.files.isChecked()
    assert kinds.original_paths.isEnabled()  # a Files and Folders snapshot keeps them
    kinds.overwrite.setChecked(True)
    click_next(qtbot, wizard)
    destination = wizard.destination_page
    assert destination.row.isVisible()
    destination.path.setText(str(dest))
    click_next(qtbot, wizard)
    assert str(dest) in wizard.run_page.summary.text()
    click_finish(qtbot, wizard)
    qtbot.waitUntil(lambda: _done(main, Classification.RESTORE) != [], timeout=SLOW)
    job = _done(main, Classification.RESTORE)[0]
    assert job.status is JobStatus.SUCCESS, job.error_message
    assert job.job_id in main.backup_tab.progress.rows  # a known item: on the Backup tab
    restored = dest / str(source).lstrip("/")
    assert (restored / "keep.txt").read_text() == "keep me\n"
    if files.browsable:
        assert not (restored / "other.txt").exists()


def restore_all_to_zip(qtbot: QtBot, main: MainWindow, source: Path, archive: Path) -> None:
    qtbot.mouseClick(main.restore_button, LEFT)
    wizard = main.restore_wizard
    assert wizard is not None
    click_next(qtbot, wizard)
    qtbot.waitUntil(lambda: wizard.item_page.snapshot() is not None, timeout=SLOW)
    click_next(qtbot, wizard)
    assert wizard.files_page.all_files.isChecked()
    click_next(qtbot, wizard)
    wizard.type_page.archive.setChecked(True)
    wizard.type_page.set_archive_format(ArchiveFormat.ZIP)
    assert not wizard.type_page.original_paths.isEnabled()
    click_next(qtbot, wizard)
    assert "zip" in wizard.destination_page.explain.text()
    wizard.destination_page.path.setText(str(archive))
    click_next(qtbot, wizard)
    click_finish(qtbot, wizard)
    qtbot.waitUntil(
        lambda: not wizard.isVisible() or bool(wizard.run_page.error.text()), timeout=SLOW
    )
    if wizard.isVisible():  # an agent without archive restores: a readable refusal
        error = wizard.run_page.error.text()
        assert error.startswith("The restore did not start: ") and "Traceback" not in error
        wizard.reject()
        return
    qtbot.waitUntil(lambda: _done(main, Classification.RESTORE, 2) != [], timeout=SLOW)
    newest = max(_done(main, Classification.RESTORE, 2), key=lambda j: j.started_at or 0)
    assert newest.status is JobStatus.SUCCESS, newest.error_message
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        keep = next(n for n in names if n.endswith("keep.txt"))
        assert z.read(keep) == b"keep me\n"
        assert any(n.endswith("other.txt") for n in names)


def read_history(qtbot: QtBot, main: MainWindow) -> None:
    tab = main.history_tab
    main.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: len(tab.visible_jobs()) >= 2, timeout=SLOW)
    kinds = {j.classification for j in tab.visible_jobs()}
    assert {Classification.BACKUP, Classification.RESTORE} <= kinds
    assert tab.model.data(tab.model.index(0, tab.model.VAULT)) == "local-vault"
    assert not tab.filter_pane.isVisible()
    qtbot.mouseClick(tab.filter_button, LEFT)
    assert tab.filter_pane.isVisible()
    tab.classification.setCurrentIndex(tab.classification.findData(Classification.BACKUP))
    jobs = tab.visible_jobs()
    assert len(jobs) == 1 and jobs[0].classification is Classification.BACKUP
    tab.classification.setCurrentIndex(tab.classification.findData(Classification.RESTORE))
    assert all(j.classification is Classification.RESTORE for j in tab.visible_jobs())
    tab.classification.setCurrentIndex(0)
    tab.status.setCurrentIndex(tab.status.findText("Error"))
    assert tab.visible_jobs() == []
    tab.status.setCurrentIndex(0)
    tab.item.setCurrentIndex(tab.item.findText("docs"))
    assert all(j.item_id for j in tab.visible_jobs())
    tab.item.setCurrentIndex(0)

    backup_row = next(
        row
        for row in range(tab.proxy.rowCount())
        if tab.proxy.record(row).classification is Classification.BACKUP
    )
    double_click_row(qtbot, tab.table, backup_row)
    dialog = tab.log_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.model.rowCount() > 0, timeout=SLOW)
    assert "Backup" in dialog.summary.text()
    everything = dialog.visible_messages()
    dialog.severity.setCurrentIndex(3)  # errors only
    assert dialog.visible_messages() == []
    dialog.severity.setCurrentIndex(0)
    word = everything[0].split()[0]
    dialog.search.setText(word)
    assert dialog.visible_messages() and all(
        word.lower() in m.lower() for m in dialog.visible_messages()
    )
    dialog.search.setText("no such text anywhere")
    assert dialog.visible_messages() == []
    dialog.reject()


def retention_pass(qtbot: QtBot, main: MainWindow) -> None:
    tab = main.account_tab
    main.tabs.setCurrentWidget(tab)
    vault = tab.vaults.record(0)
    assert vault is not None
    menu = tab.vault_menu(vault)
    advanced = next(a.menu() for a in menu.actions() if a.text() == "Advanced")
    assert advanced is not None
    labels = [a.text() for a in advanced.actions()]
    assert labels == ["Run retention pass now", "Rebuild indexes", "Deep verify", "Unlock"]
    advanced.actions()[0].trigger()
    qtbot.waitUntil(lambda: _done(main, Classification.RETENTION) != [], timeout=SLOW)
    job = _done(main, Classification.RETENTION)[0]
    assert job.status is JobStatus.SUCCESS, job.error_message
    assert job.job_id in tab.progress.rows  # vault jobs show on the Account tab


def test_back_up_restore_and_read_the_history(
    qtbot: QtBot, alice: AgentProcess, controller: AppController, short_tmp: Path
) -> None:
    source, vault_dir = short_tmp / "src", short_tmp / "vault"
    source.mkdir()
    (source / "keep.txt").write_text("keep me\n")
    (source / "other.txt").write_text("not this one\n")
    (source / "skip.tmp").write_text("excluded\n")

    main = controller.main_window
    assert main is not None
    qtbot.waitUntil(lambda: main.profile is not None, timeout=SLOW)
    assert main.account_tab.version.text().startswith("Comet Backup ")
    add_vault(qtbot, main, vault_dir)
    add_item(qtbot, main, source)
    edit_item(qtbot, main)
    backup_now(qtbot, main)
    restore_one_file_to_folder(qtbot, main, source, short_tmp / "dest")
    restore_all_to_zip(qtbot, main, source, short_tmp / "all.zip")
    read_history(qtbot, main)
    retention_pass(qtbot, main)


def test_delete_a_snapshot_from_the_restore_wizard(
    qtbot: QtBot,
    alice: AgentProcess,
    controller: AppController,
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = short_tmp / "src"
    source.mkdir()
    (source / "a.txt").write_text("one\n")
    alice.comet("vault", "add", "local-vault", "--type", "local", "--path", str(short_tmp / "v"))
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    for _ in range(2):
        alice.comet("backup", "docs", "--vault", "local-vault", "--wait")
    main = controller.main_window
    assert main is not None
    main.refresh()  # the vault and the item were added behind the app's back
    qtbot.waitUntil(lambda: main.profile is not None and bool(main.profile.vaults), timeout=SLOW)

    wizard = main.open_restore_wizard()
    assert wizard is not None
    click_next(qtbot, wizard)
    page = wizard.item_page
    qtbot.waitUntil(lambda: page.tree.topLevelItemCount() == 1, timeout=SLOW)
    top = page.tree.topLevelItem(0)
    assert top is not None and top.childCount() == 2
    newest, oldest = top.child(0), top.child(1)
    assert newest is not None and oldest is not None
    assert newest.text(0) >= oldest.text(0)  # newest first
    victim = oldest.data(0, Qt.ItemDataRole.UserRole)

    asked: list[str] = []

    def confirm(*args: object) -> QMessageBox.StandardButton:
        asked.append(str(args[2]))
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", confirm)
    page.delete_snapshot(victim)
    assert asked and "cannot be undone" in asked[0]
    qtbot.waitUntil(lambda: _done(main, Classification.DELETE_SNAPSHOT) != [], timeout=SLOW)
    job = _done(main, Classification.DELETE_SNAPSHOT)[0]
    assert job.status is JobStatus.SUCCESS, job.error_message
    qtbot.mouseClick(page.refresh_button, LEFT)
    qtbot.waitUntil(
        lambda: page.tree.topLevelItemCount() == 1 and page.tree.topLevelItem(0).childCount() == 1,  # type: ignore[union-attr]
        timeout=SLOW,
    )
    remaining = page.tree.topLevelItem(0).child(0).data(0, Qt.ItemDataRole.UserRole)  # type: ignore[union-attr]
    assert remaining.snapshot_id != victim.snapshot_id
    wizard.reject()
