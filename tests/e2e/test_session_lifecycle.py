"""Session lifecycle: after `comet disconnect` then `comet login` the live connection is
up again within 5 s, every time (it used to stay down until the agent restarted,
because the connection loop died on the cancellation of its own call)."""

from __future__ import annotations

import time

from comet.agent.client_cli import AgentClient
from comet.v1 import agent_api_pb2
from tests.fixtures.processes import (
    ALICE_PASSWORD,
    AdminCli,
    AgentProcess,
    ServerProcess,
    wait_for,
)

CYCLES = 20


def test_disconnect_then_login_reconnects_within_5s_twenty_times(
    server: ServerProcess, admin: AdminCli, alice: AgentProcess
) -> None:
    device = alice.status()["device_id"]
    api = AgentClient(alice.socket).api  # polls cheaply; the commands go through `comet`

    def connected() -> bool:
        return bool(api.Status(agent_api_pb2.StatusRequest(), timeout=10).connected)

    slowest = 0.0
    for cycle in range(CYCLES):
        alice.comet("disconnect")
        status = api.Status(agent_api_pb2.StatusRequest(), timeout=10)
        assert not status.logged_in and not status.connected, cycle
        alice.comet(
            "login", "--server", server.url, "--username", "alice", "--password-stdin",
            stdin=ALICE_PASSWORD + "\n",
        )  # fmt: skip
        started = time.monotonic()
        wait_for(connected, timeout=5, interval=0.05, what=f"connected again, cycle {cycle}")
        slowest = max(slowest, time.monotonic() - started)
    assert alice.status()["device_id"] == device  # the same device, not a new one each time
    # The server sees it online too: an admin command reaches it.
    online = admin("device", "list", "--online", "--json").json()
    assert [d["device_id"] for d in online] == [device]
    result = admin("dispatch", "refetch", "--device", device, check=False)
    assert result.returncode == 0, result.stderr
