"""The vault editor's immutability field: S3 carries it (and its lock mode) to the
agent; Local Path and SFTP vaults are refused with the reason instead."""

from __future__ import annotations

import pytest
from pytestqt.qtbot import QtBot

from comet.gui.convert import vault_from_proto, vault_to_proto
from comet.gui.dialogs import VaultEditor
from comet.gui.records import VaultType
from comet.v1 import common_pb2

pytestmark = pytest.mark.timeout(30)


def test_local_and_sftp_vaults_cannot_be_immutable(qtbot: QtBot) -> None:
    editor = VaultEditor()
    qtbot.addWidget(editor)
    editor.name.setText("usb")
    editor.local_path.setText("/mnt/usb")
    editor.immutable_days.setValue(30)
    for kind in (VaultType.LOCAL, VaultType.SFTP):
        editor.type.setCurrentIndex(VaultEditor.TYPES.index(kind))
        assert "cannot be immutable" in editor.problem()
    editor.immutable_days.setValue(0)
    editor.type.setCurrentIndex(VaultEditor.TYPES.index(VaultType.LOCAL))
    assert editor.problem() == ""


def test_an_immutable_s3_vault_reaches_the_agent_with_its_lock_mode(qtbot: QtBot) -> None:
    editor = VaultEditor()
    qtbot.addWidget(editor)
    editor.name.setText("locked")
    editor.type.setCurrentIndex(VaultEditor.TYPES.index(VaultType.S3))
    for field, text in (
        (editor.s3_endpoint, "https://s3.example.com"),
        (editor.s3_bucket, "b"),
        (editor.s3_access_key, "k"),
        (editor.s3_secret_key, "s"),
    ):
        field.setText(text)
    editor.immutable_days.setValue(14)
    editor.object_lock_compliance.setChecked(True)
    assert editor.problem() == ""
    msg = vault_to_proto(editor.vault())
    assert msg.immutable_days == 14
    assert msg.object_lock_mode == common_pb2.OBJECT_LOCK_MODE_COMPLIANCE
    shown = VaultEditor(vault_from_proto(msg))
    qtbot.addWidget(shown)
    assert shown.immutable_days.value() == 14 and not shown.immutable_days.isEnabled()
