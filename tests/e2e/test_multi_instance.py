"""Two server instances on one PostgreSQL behind a real nginx (deploy/nginx/comet.conf)
that terminates TLS with a certificate made by ``comet-server make-certificate``: an
agent connects through nginx over https, and a command sent to the instance that does
NOT hold its stream reaches it through PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.nginx import NginxProcess
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import (
    AdminCli,
    AgentProcess,
    ServerProcess,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)

PASSWORD = "alice-password-1"


@pytest.fixture
def cluster(
    postgres_cluster: PostgresCluster, short_tmp: Path
) -> Iterator[tuple[list[ServerProcess], NginxProcess]]:
    url = postgres_cluster.fresh_database()
    web_port = free_port()
    first = ServerProcess(
        short_tmp / "s1", url, free_port(), extra_args=("--web-listen", f"127.0.0.1:{web_port}")
    )
    first.data_dir.mkdir()
    first.add_admin()
    first.start()  # creates the secret key the second instance must share
    second = ServerProcess(
        short_tmp / "s2",
        url,
        free_port(),
        extra_args=("--secret-key-file", str(first.data_dir / "secret.key")),
    )
    second.data_dir.mkdir()
    second.start()
    nginx = NginxProcess(short_tmp / "nginx", [first.port, second.port], web=(web_port,))
    try:
        yield [first, second], nginx
    finally:
        nginx.stop()
        for server in (first, second):
            server.kill()


def other_than_holder(servers: list[ServerProcess], device_id: str) -> ServerProcess | None:
    """The instance NOT holding the device's stream, known from the instances' logs."""
    holding = [s for s in servers if f"device {device_id} connected" in s.log.read_text()]
    if len(holding) != 1:
        return None
    return next(s for s in servers if s is not holding[0])


def test_a_command_sent_to_the_other_instance_reaches_the_agent_through_postgres(
    cluster: tuple[list[ServerProcess], NginxProcess],
    agent: AgentProcess,
    short_tmp: Path,
) -> None:
    servers, nginx = cluster
    via_nginx = AdminCli(short_tmp / "admin-lb.json", servers[0])
    assert nginx.url.startswith("https://")
    via_nginx(
        "login", "--server", nginx.url, "--username", "admin", "--password-stdin",
        "--trust-fingerprint", nginx.fingerprint, stdin="admin-password-1\n",
    )  # fmt: skip
    via_nginx("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    # The same TLS host serves the web console: not gRPC, so to the web upstream.
    with httpx.Client(verify=False, timeout=10) as browser:
        signin = browser.get(nginx.url + "signin")
        assert signin.status_code == 200 and "Sign in" in signin.text
        spec = browser.get(nginx.url + "api/v1/openapi.json")
        assert spec.json()["info"]["title"] == "Comet Server HTTP API"
    agent.comet(
        "login", "--server", nginx.url, "--username", "alice", "--password-stdin",
        "--trust-fingerprint", nginx.fingerprint, stdin=PASSWORD + "\n",
    )  # fmt: skip
    status = wait_for(lambda: (s := agent.status())["connected"] and s, what="live connection")
    device = status["device_id"]
    source = short_tmp / "src"
    source.mkdir()
    (source / "a.txt").write_text("routed through postgres\n")
    agent.comet("vault", "add", "v", "--type", "local", "--path", str(short_tmp / "vault"))
    agent.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    item_id = agent.comet("item", "list", "--json").json()[0]["item_id"]
    vault_id = agent.comet("vault", "list", "--json").json()[0]["vault_id"]

    other: ServerProcess = wait_for(lambda: other_than_holder(servers, device))
    direct = AdminCli(short_tmp / "admin-other.json", other)
    direct.login()
    started = time.monotonic()
    result = direct(
        "dispatch", "backup", "--device", device, "--item", item_id, "--vault", vault_id,
        "--wait", "--json",
    ).json()  # fmt: skip
    job = result.get("job", result)
    assert job["status"] == "success" and job["snapshot_id"], result
    assert time.monotonic() - started < 30
    rows = [j for j in direct("jobs", "--json").json() if j["job_id"] == job["job_id"]]
    assert rows and rows[0]["snapshot_id"] == job["snapshot_id"]

    # The same dispatch to a device that is connected nowhere fails clearly.
    agent.kill()
    wait_for(
        lambda: not any(d["online"] for d in direct("device", "list", "--json").json()),
        timeout=30,
        what="the device to go offline",
    )
    gone = direct(
        "dispatch", "backup", "--device", device, "--item", item_id, "--vault", vault_id,
        check=False,
    )  # fmt: skip
    assert gone.returncode != 0
    assert f"device {device} is not connected" in gone.stderr
