"""Pinning the host key of an existing SFTP vault through the real CLI, agent and SFTP
server: a vault saved before pinning existed is refused with the command to run,
``comet vault trust-host-key`` pins what the agent sees, and a changed key is never
re-pinned without the person naming it."""

from __future__ import annotations

import grpc
import pytest

from comet.agent.storage.sftp import SftpConfig, host_key_fingerprint
from comet.v1 import agent_api_pb2, agent_api_pb2_grpc
from tests.fixtures.processes import AgentProcess
from tests.fixtures.sftp import SftpTestServer

pytestmark = pytest.mark.timeout(120)


def _forget_pin(alice: AgentProcess, vault_name: str) -> None:
    """What a vault saved before host keys were pinned looks like: no host key."""
    with grpc.insecure_channel(f"unix:{alice.socket}") as channel:
        api = agent_api_pb2_grpc.AgentApiStub(channel)
        profile = api.GetProfile(agent_api_pb2.LocalProfileRequest(refetch=True), timeout=30)
        vault = next(v for v in profile.vaults if v.name == vault_name)
        vault.sftp.host_key = ""
        api.SaveProfile(agent_api_pb2.SaveProfileRequest(profile=profile), timeout=30)


def test_an_unpinned_sftp_vault_says_what_to_run_and_trust_host_key_pins_it(
    alice: AgentProcess, sftp_server: SftpTestServer, sftp_config: SftpConfig
) -> None:
    cfg = sftp_config
    where = ["--host", cfg.host, "--port", str(cfg.port), "--user", cfg.username]
    where += ["--path", cfg.root, "--host-key", cfg.host_key or "", "--password-stdin"]
    alice.comet("vault", "add", "old net", "--type", "sftp", *where, stdin="s3cret\n")
    _forget_pin(alice, "old net")
    fingerprint = host_key_fingerprint(sftp_server.host_key)

    refused = alice.comet("snapshots", "--vault", "old net", check=False)
    assert refused.returncode != 0
    assert "SFTP vault 'old net' has no pinned host key" in refused.stderr
    assert fingerprint in refused.stderr
    assert "comet vault trust-host-key 'old net'" in refused.stderr

    # No terminal to ask and no --host-key: nothing is pinned; the fingerprint is shown.
    asked = alice.comet("vault", "trust-host-key", "old net", check=False)
    assert asked.returncode != 0 and f"--host-key {fingerprint}" in asked.stderr
    wrong = "SHA256:" + "A" * 43
    mismatch = alice.comet("vault", "trust-host-key", "old net", "--host-key", wrong, check=False)
    assert mismatch.returncode != 0 and "was not changed" in mismatch.stderr

    pinned = alice.comet(
        "vault", "trust-host-key", "old net", "--host-key", fingerprint, "--json"
    ).json()
    assert pinned["changed"] is True and pinned["fingerprint"] == fingerprint
    assert alice.comet("snapshots", "--vault", "old net", "--json").json() == []
    again = alice.comet("vault", "trust-host-key", "old net", "--host-key", fingerprint, "--json")
    assert again.json()["changed"] is False

    # The server's key changes: refused naming both keys, and never re-pinned by itself.
    new_fingerprint = host_key_fingerprint(sftp_server.restart_with_new_host_key())
    changed = alice.comet("snapshots", "--vault", "old net", check=False)
    assert changed.returncode != 0
    assert fingerprint in changed.stderr and new_fingerprint in changed.stderr
    asked = alice.comet("vault", "trust-host-key", "old net", check=False)
    assert asked.returncode != 0
    assert fingerprint in asked.stderr and new_fingerprint in asked.stderr
    alice.comet("vault", "trust-host-key", "old net", "--host-key", new_fingerprint)
    assert alice.comet("snapshots", "--vault", "old net", "--json").json() == []
