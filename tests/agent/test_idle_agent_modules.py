"""What a real, logged-in ``comet-agent run`` has imported: idle, none of the big
libraries only some jobs need (S3, SFTP, the mount stack, the server's database layer,
the GUI); after a backup to a local vault, still none of the network backends.

The agent runs under a small launcher that records ``sys.modules`` when the process
exits (SIGTERM, the normal stop), so the list is the real process's, not an import of
the service in a test interpreter."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.fixtures.processes import (
    AdminCli,
    AgentProcess,
    ServerProcess,
    add_alice,
    wait_for,
)

LAUNCHER = """
import atexit, os, runpy, sys

def record():
    with open(os.environ["COMET_TEST_MODULES_OUT"], "w") as out:
        out.write("\\n".join(sorted(sys.modules)))

atexit.register(record)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

# Top-level packages an idle agent must not hold (each 6-15 MiB resident, or not an
# agent's at all).
NOT_IDLE = (
    "boto3",
    "botocore",
    "paramiko",
    "sqlalchemy",
    "trio",
    "pyfuse3",
    "PyQt6",
    "cryptography",
    "comet.server",
    "comet.gui",
)
NETWORK_BACKENDS = ("boto3", "botocore", "paramiko", "comet.agent.storage.s3")


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


def _stop_and_read(agent: AgentProcess, out: Path) -> set[str]:
    agent.stop()
    return set(out.read_text().split())


def test_idle_agent_holds_no_job_only_libraries(
    server: ServerProcess, admin: AdminCli, short_tmp: Path
) -> None:
    launcher = short_tmp / "launcher.py"
    launcher.write_text(LAUNCHER)
    out = short_tmp / "modules.txt"
    root = short_tmp / "agent"
    root.mkdir()
    agent = AgentProcess(
        root, env={"COMET_TEST_MODULES_OUT": str(out)}, prefix=(sys.executable, str(launcher))
    )
    agent.start()
    try:
        add_alice(server, admin, agent)
        agent.stop()  # the process that ran the login derived keys with cryptography
        agent.start()
        wait_for(lambda: agent.status()["connected"], what="live connection")
        idle = _stop_and_read(agent, out)
        assert "comet.agent.service" in idle  # the record is the agent's own
        assert _loaded(idle, NOT_IDLE) == []

        agent.start()
        wait_for(lambda: agent.status()["connected"], what="live connection")
        source = short_tmp / "src"
        source.mkdir()
        (source / "a.txt").write_text("hello\n")
        agent.comet("vault", "add", "here", "--type", "local", "--path", str(short_tmp / "v"))
        agent.comet("item", "add", "docs", "--type", "files", "--include", str(source))
        job = agent.comet("backup", "docs", "--vault", "here", "--wait", "--json").json()
        assert job["status"] == "success"
        after_backup = _stop_and_read(agent, out)
        assert "comet.agent.backup.run" in after_backup
        assert _loaded(after_backup, NETWORK_BACKENDS) == []
    finally:
        agent.kill()
