"""A stopped agent over a schedule's time: after the restart the runs that fell while
it was down are recorded as Missed (7004) on the device and reach the server. Proves
the saved last-run times survive the restart (they used to be reset to the boot time,
so nothing was ever missed)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.e2e.test_agent_service import backups, setup_item
from tests.fixtures.processes import AdminCli, AgentProcess, wait_for

MISSED = 7004


def missed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [j for j in rows if j["status_code"] == MISSED]


def test_runs_that_fell_while_the_agent_was_stopped_are_recorded_missed(
    admin: AdminCli, alice: AgentProcess, short_tmp: Path
) -> None:
    alice.stop()
    alice.extra_env["COMET_AGENT_MISSED_GRACE"] = "1"  # a run >1 s late is missed
    alice.start()
    setup_item(alice, short_tmp)
    alice.comet("schedule", "add", "--item", "docs", "--vault", "v", "--every", "3")
    wait_for(lambda: backups(alice), timeout=30, what="a first scheduled backup")
    assert not missed(alice.comet("history", "--json").json())

    alice.stop()
    time.sleep(8)  # two or three runs fall while the agent is down
    alice.start()

    rows = wait_for(
        lambda: missed(alice.comet("history", "--json").json()), timeout=20, what="missed"
    )
    assert rows[0]["classification"] == "backup"
    log = alice.comet("job", "log", rows[0]["job_id"], "--json").json()["entries"]
    assert "did not run" in log[0]["message"] and log[0]["severity"] == "E"
    device = alice.status()["device_id"]
    on_server = wait_for(
        lambda: missed(admin("jobs", "--device", device, "--json").json()),
        timeout=30,
        what="the missed run reported to the server",
    )
    assert {r["job_id"] for r in on_server} >= {r["job_id"] for r in rows}
    # And the schedule goes on running after the restart.
    count = len(backups(alice))
    wait_for(lambda: len(backups(alice)) > count, timeout=20, what="a run after restart")
