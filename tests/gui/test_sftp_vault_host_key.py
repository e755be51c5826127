"""Adding an SFTP vault in the app against the real SFTP server and agent: the app asks
the agent for the key the server presents, shows its fingerprint, and the vault pins
that key only once the person confirms it (or typed it in)."""

from __future__ import annotations

import pytest
from pytestqt.qtbot import QtBot

from comet.agent.storage.sftp import SftpConfig, host_key_fingerprint
from comet.gui.agent_client import ApiError
from comet.gui.app import AppController
from comet.gui.dialogs import VaultEditor
from comet.gui.records import Profile, SftpVaultSettings, VaultType
from tests.fixtures.processes import AgentProcess
from tests.fixtures.sftp import SftpTestServer
from tests.gui.driving import LEFT, SLOW

pytestmark = pytest.mark.timeout(120)


def _fill(editor: VaultEditor, cfg: SftpConfig, name: str) -> None:
    editor.name.setText(name)
    editor.type.setCurrentIndex(VaultEditor.TYPES.index(VaultType.SFTP))
    editor.sftp_host.setText(cfg.host)
    editor.sftp_port.setValue(cfg.port)
    editor.sftp_user.setText(cfg.username)
    editor.sftp_path.setText(cfg.root)
    editor.sftp_password.setText(cfg.password or "")


def test_a_new_sftp_vault_pins_the_host_key_the_person_confirms(
    qtbot: QtBot,
    alice: AgentProcess,
    controller: AppController,
    sftp_server: SftpTestServer,
    sftp_config: SftpConfig,
) -> None:
    main = controller.main_window
    assert main is not None
    tab = main.account_tab
    fingerprint = host_key_fingerprint(sftp_server.host_key)
    where = f"{sftp_config.host}:{sftp_config.port}"

    # The agent never saves an SFTP vault without a pinned key, whoever asks.
    editor = tab.open_vault_editor(None)
    _fill(editor, sftp_config, "net")
    errors: list[ApiError] = []
    main.client.add_vault(editor.vault()).then(lambda _v: None, errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=SLOW)
    assert "has no pinned host key" in errors[0].message

    asked: list[tuple[str, str]] = []
    tab.confirm_host_key = lambda w, shown: bool(asked.append((w, shown)))  # says No
    qtbot.mouseClick(editor.save_button, LEFT)
    qtbot.waitUntil(lambda: "not confirmed" in editor.error.text(), timeout=SLOW)
    assert asked == [(where, f"{fingerprint} (ssh-ed25519)")]

    # A key typed in that is not the server's: refused, naming the one it presents.
    editor.sftp_host_key.setText("SHA256:" + "A" * 43)
    qtbot.mouseClick(editor.save_button, LEFT)
    qtbot.waitUntil(lambda: "not the host key entered" in editor.error.text(), timeout=SLOW)
    assert fingerprint in editor.error.text() and len(asked) == 1

    editor.sftp_host_key.clear()
    tab.confirm_host_key = lambda w, shown: asked.append((w, shown)) is None  # says Yes
    qtbot.mouseClick(editor.save_button, LEFT)
    qtbot.waitUntil(lambda: tab.editor is None, timeout=SLOW)
    assert len(asked) == 2

    profiles: list[Profile] = []
    main.client.get_profile().then(profiles.append)
    qtbot.waitUntil(lambda: bool(profiles), timeout=SLOW)
    (vault,) = [v for v in profiles[0].vaults if v.name == "net"]
    assert isinstance(vault.settings, SftpVaultSettings)
    assert vault.settings.host_key == sftp_server.host_key  # the full key, not typed text
    assert alice.comet("snapshots", "--vault", "net", "--json").json() == []
