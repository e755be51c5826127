"""https end to end: a server with a self-signed certificate of its own, an agent and
comet-admin that pin it at login, and a swapped certificate refused until the next
login."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import AdminCli, AgentProcess, ServerProcess, free_port, wait_for

pytestmark = pytest.mark.timeout(90)

PASSWORD = "alice-password-1"


@pytest.fixture
def tls_server(postgres_cluster: PostgresCluster, short_tmp: Path) -> Iterator[ServerProcess]:
    data_dir = short_tmp / "server"
    data_dir.mkdir()
    proc = ServerProcess(
        data_dir, postgres_cluster.fresh_database(), free_port(), extra_args=("--tls",)
    )
    proc.add_admin()
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


def login(agent: AgentProcess, url: str, *, check: bool = True) -> object:
    return agent.comet(
        "login",
        "--server",
        url,
        "--username",
        "alice",
        "--password-stdin",
        stdin=PASSWORD + "\n",
        check=check,
    )


def test_login_over_https_pins_the_self_signed_certificate_and_refuses_a_swapped_one(
    tls_server: ServerProcess, agent: AgentProcess, short_tmp: Path
) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    tls_dir = tls_server.data_dir / "tls"
    assert stat.S_IMODE((tls_dir / "server.key").stat().st_mode) == 0o600
    first_cert = (tls_dir / "server.crt").read_bytes()

    admin = AdminCli(short_tmp / "admin.json", tls_server)
    admin.login()
    admin("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    login(agent, tls_server.url)
    wait_for(lambda: agent.status()["connected"], what="live connection over https")

    # A restart reuses the certificate: the pinned agent reconnects by itself.
    tls_server.kill()
    tls_server.start()
    assert (tls_dir / "server.crt").read_bytes() == first_cert
    wait_for(lambda: agent.status()["connected"], timeout=30, what="reconnect, same cert")

    # A new certificate (another key) is refused by the agent and by comet-admin.
    tls_server.kill()
    shutil.rmtree(tls_dir)
    tls_server.start()
    assert (tls_dir / "server.crt").read_bytes() != first_cert
    status = wait_for(
        lambda: "certificate" in (s := agent.status())["last_error"] and s,
        timeout=30,
        what="the changed certificate refused",
    )
    assert not status["connected"]
    assert "certificate is not the one trusted at login" in status["last_error"]
    refused = admin("user", "list", check=False)
    assert refused.returncode != 0
    assert "certificate is not the one trusted at login" in refused.stderr

    # Logging in again trusts the new certificate.
    login(agent, tls_server.url)
    wait_for(lambda: agent.status()["connected"], what="connection after logging in again")
    admin.login()
    assert "alice" in admin("user", "list").stdout
