from __future__ import annotations

import pytest

from tests.fixtures.processes import AdminCli, AgentProcess, ServerProcess, wait_for

ALICE_PASSWORD = "alice-password-1"


@pytest.fixture
def alice(server: ServerProcess, admin: AdminCli, agent: AgentProcess) -> AgentProcess:
    """The agent, logged in as a fresh user 'alice' and live-connected."""
    admin("user", "add", "alice", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
    agent.comet(
        "login",
        "--server",
        server.url,
        "--username",
        "alice",
        "--password-stdin",
        "--device-name",
        "alice-laptop",
        stdin=ALICE_PASSWORD + "\n",
    )
    wait_for(lambda: agent.status()["connected"], what="live connection")
    return agent
