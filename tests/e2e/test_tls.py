"""https end to end: a server with a self-signed certificate of its own, an agent and
comet-admin that trust it only once its fingerprint is confirmed, and a swapped
certificate refused (with both fingerprints) until it is explicitly re-pinned."""

from __future__ import annotations

import os
import pty
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from comet.agent.transport import certificate_fingerprint
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import (
    ADMIN_PASSWORD,
    BIN,
    AdminCli,
    AgentProcess,
    CliResult,
    ServerProcess,
    free_port,
    wait_for,
)

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


def login(agent: AgentProcess, url: str, *extra: str, check: bool = True) -> CliResult:
    return agent.comet(
        "login",
        "--server",
        url,
        "--username",
        "alice",
        "--password-stdin",
        *extra,
        stdin=PASSWORD + "\n",
        check=check,
    )


def test_a_self_signed_certificate_is_trusted_only_once_confirmed_and_a_swapped_one_is_refused(
    tls_server: ServerProcess, agent: AgentProcess, short_tmp: Path
) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    tls_dir = tls_server.data_dir / "tls"
    assert stat.S_IMODE((tls_dir / "server.key").stat().st_mode) == 0o600
    first_cert = (tls_dir / "server.crt").read_bytes()
    first = certificate_fingerprint(first_cert)
    # The server shows the fingerprint people confirm.
    assert f"TLS certificate fingerprint {first}" in tls_server.log.read_text()

    # Not a terminal and nothing confirmed: refused, in one line naming the fingerprint
    # and the flag to use.
    admin = AdminCli(short_tmp / "admin.json", tls_server)
    refused = admin.login(check=False)
    assert refused.returncode != 0
    assert first in refused.stderr and "--trust-fingerprint" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    admin.login(extra=("--trust-fingerprint", first.lower().replace("sha256:", "")))
    admin("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")

    refused = login(agent, tls_server.url, check=False)
    assert refused.returncode != 0
    assert first in refused.stderr and "comet login" in refused.stderr
    assert "--trust-fingerprint" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not agent.status()["logged_in"]
    wrong = "SHA256:" + ":".join(["AB"] * 32)
    refused = login(agent, tls_server.url, "--trust-fingerprint", wrong, check=False)
    assert refused.returncode != 0 and wrong in refused.stderr and first in refused.stderr
    login(agent, tls_server.url, "--trust-fingerprint", first)
    wait_for(lambda: agent.status()["connected"], what="live connection over https")

    # A restart reuses the certificate: the pinned agent reconnects by itself.
    tls_server.kill()
    tls_server.start()
    assert (tls_dir / "server.crt").read_bytes() == first_cert
    wait_for(lambda: agent.status()["connected"], timeout=30, what="reconnect, same cert")

    # A new certificate (another key) is refused by the agent and by comet-admin, each
    # naming both fingerprints and how to re-pin.
    tls_server.kill()
    shutil.rmtree(tls_dir)
    tls_server.start()
    second = certificate_fingerprint((tls_dir / "server.crt").read_bytes())
    assert second != first
    status = wait_for(
        lambda: second in (s := agent.status())["last_error"] and s,
        timeout=30,
        what="the changed certificate refused",
    )
    assert not status["connected"]
    assert first in status["last_error"] and "--trust-fingerprint" in status["last_error"]
    refused = admin("user", "list", check=False)
    assert refused.returncode != 0
    assert first in refused.stderr and second in refused.stderr

    # Logging in again does not trust it silently, not even on the agent after a logout.
    for attempt in (admin.login(check=False), login(agent, tls_server.url, check=False)):
        assert attempt.returncode != 0
        assert first in attempt.stderr and second in attempt.stderr
        assert f"--trust-fingerprint {second}" in attempt.stderr
    agent.comet("disconnect")
    refused = login(agent, tls_server.url, check=False)
    assert refused.returncode != 0 and second in refused.stderr

    # Re-pinning is explicit.
    login(agent, tls_server.url, "--trust-fingerprint", second)
    wait_for(lambda: agent.status()["connected"], what="connection after re-pinning")
    admin.login(extra=("--trust-fingerprint", second))
    assert "alice" in admin("user", "list").stdout


def on_a_terminal(
    argv: list[str], typed: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """A command with a terminal as standard input, as a person runs it."""
    main, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            argv, stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        os.write(main, typed.encode())
        out, err = proc.communicate(timeout=60)
        return proc.returncode, out + err
    finally:
        os.close(main)
        os.close(terminal)


def login_on_a_terminal(agent: AgentProcess, url: str, typed: str) -> tuple[int, str]:
    return on_a_terminal(
        [str(BIN / "comet"), "--socket", str(agent.socket), "login", "--server", url,
         "--username", "alice", "--password-stdin"],
        typed,
    )  # fmt: skip


def test_on_a_terminal_the_fingerprint_is_shown_and_trusted_only_on_yes(
    tls_server: ServerProcess, agent: AgentProcess, short_tmp: Path
) -> None:
    fingerprint = certificate_fingerprint((tls_server.data_dir / "tls" / "server.crt").read_bytes())
    config = short_tmp / "admin.json"
    admin_login = [str(BIN / "comet-admin"), "login", "--server", tls_server.url,
                   "--username", "admin", "--password-stdin"]  # fmt: skip
    env = {"COMET_ADMIN_CONFIG": str(config)}
    code, output = on_a_terminal(admin_login, "no\n" + ADMIN_PASSWORD + "\n", env)
    assert code != 0 and fingerprint in output and "[y/N]" in output
    code, output = on_a_terminal(admin_login, "yes\n" + ADMIN_PASSWORD + "\n", env)
    assert code == 0, output
    admin = AdminCli(config, tls_server)
    admin("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")

    code, output = login_on_a_terminal(agent, tls_server.url, "n\n" + PASSWORD + "\n")
    assert code != 0
    assert fingerprint in output and "Trust this server? [y/N]" in output
    assert not agent.status()["logged_in"]

    code, output = login_on_a_terminal(agent, tls_server.url, "y\n" + PASSWORD + "\n")
    assert code == 0, output
    assert agent.status()["logged_in"]
