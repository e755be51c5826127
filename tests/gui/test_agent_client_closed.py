"""A closed client makes no more calls: a window's status timer can still fire after the
app closed its client, and a call on the closed channel from a pool thread can crash
grpc (it did, once, in a full test run)."""

from __future__ import annotations

from pathlib import Path

from comet.gui.agent_client import AgentClient


def test_a_closed_client_starts_no_call(qapp: object, tmp_path: Path) -> None:
    client = AgentClient(tmp_path / "no-agent.sock")
    client.close()
    started: list[str] = []
    client._pool.start = lambda *a: started.append("call")  # type: ignore[method-assign]
    pending = client.status()
    assert pending.operation == "Status" and started == []
