"""Adding an SFTP vault in the app against the real SFTP server and agent: the app asks
the agent for the key the server presents, shows its fingerprint, and the vault pins
that key only once the person confirms it (or typed it in). Then, through the real CLI,
``comet vault trust-host-key`` for a vault saved before host keys were pinned."""

from __future__ import annotations

import grpc
import pytest
from pytestqt.qtbot import QtBot

from comet.agent.storage.sftp import SftpConfig, host_key_fingerprint
from comet.gui.agent_client import ApiError
from comet.gui.app import AppController
from comet.gui.dialogs import VaultEditor
from comet.gui.records import Profile, SftpVaultSettings, VaultType
from comet.v1 import agent_api_pb2, agent_api_pb2_grpc
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


def _forget_pin(alice: AgentProcess, vault_name: str) -> None:
    """What a vault saved before host keys were pinned looks like: no host key."""
    with grpc.insecure_channel(f"unix:{alice.socket}") as channel:
        api = agent_api_pb2_grpc.AgentApiStub(channel)
        profile = api.GetProfile(agent_api_pb2.LocalProfileRequest(refetch=True), timeout=30)
        vault = next(v for v in profile.vaults if v.name == vault_name)
        vault.sftp.host_key = ""
        api.SaveProfile(agent_api_pb2.SaveProfileRequest(profile=profile), timeout=30)


def trust_host_key_of_an_unpinned_vault(alice: AgentProcess, sftp_server: SftpTestServer) -> None:
    """Through the real CLI: a vault without a pinned key (saved before pinning existed)
    is refused with the command to run, which pins the key only once it is named, and
    a changed key is never re-pinned by itself."""
    _forget_pin(alice, "net")
    fingerprint = host_key_fingerprint(sftp_server.host_key)

    refused = alice.comet("snapshots", "--vault", "net", check=False)
    assert refused.returncode != 0
    assert "SFTP vault 'net' has no pinned host key" in refused.stderr
    assert fingerprint in refused.stderr
    assert "run 'comet vault trust-host-key net'" in refused.stderr

    # No terminal to ask and no --host-key: nothing is pinned; the fingerprint is shown.
    asked = alice.comet("vault", "trust-host-key", "net", check=False)
    assert asked.returncode != 0 and f"--host-key {fingerprint}" in asked.stderr
    wrong = "SHA256:" + "A" * 43
    mismatch = alice.comet("vault", "trust-host-key", "net", "--host-key", wrong, check=False)
    assert mismatch.returncode != 0 and "was not changed" in mismatch.stderr

    pinned = alice.comet(
        "vault", "trust-host-key", "net", "--host-key", fingerprint, "--json"
    ).json()
    assert pinned["changed"] is True and pinned["fingerprint"] == fingerprint
    assert alice.comet("snapshots", "--vault", "net", "--json").json() == []
    again = alice.comet("vault", "trust-host-key", "net", "--host-key", fingerprint, "--json")
    assert again.json()["changed"] is False

    # The server's key changes: refused naming both keys, and never re-pinned by itself.
    new_fingerprint = host_key_fingerprint(sftp_server.restart_with_new_host_key())
    changed = alice.comet("snapshots", "--vault", "net", check=False)
    assert changed.returncode != 0
    assert fingerprint in changed.stderr and new_fingerprint in changed.stderr
    asked = alice.comet("vault", "trust-host-key", "net", check=False)
    assert asked.returncode != 0
    assert fingerprint in asked.stderr and new_fingerprint in asked.stderr
    alice.comet("vault", "trust-host-key", "net", "--host-key", new_fingerprint)
    assert alice.comet("snapshots", "--vault", "net", "--json").json() == []


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

    # One agent and server for both (each start costs seconds): the CLI's part.
    trust_host_key_of_an_unpinned_vault(alice, sftp_server)
