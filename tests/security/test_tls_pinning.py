"""Authenticated transport, tried as an attacker would: a man in the middle with its
own certificate at the server's address gets nothing but TLS handshakes from the
agent and comet-admin (not even at a new login), a CA-signed server needs no
confirmation, lowered scrypt parameters on the server stop the agent logging in, and
the server will not listen in plaintext on the network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from comet.agent.credentials import KdfParams, derive_login_secrets
from comet.agent.transport import certificate_fingerprint
from comet.server.cli import require_safe_listen
from comet.server.errors import ServerError
from comet.server.passwords import hash_auth_key, kdf_to_json
from comet.server.tls import ensure_self_signed
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.processes import (
    AdminCli,
    AgentProcess,
    CliResult,
    ServerProcess,
    free_port,
    run_cli,
    wait_for,
)
from tests.security.tls_fixtures import (
    Issued,
    RecordingImpostor,
    issue_server_certificate,
    make_ca,
)

pytestmark = pytest.mark.timeout(90)

PASSWORD = "alice-password-1"


@dataclass
class TlsServer:
    process: ServerProcess
    database_url: str
    fingerprint: str


def start_tls_server(
    root: Path, database_url: str, port: int, *extra: str, add_admin: bool = True
) -> ServerProcess:
    root.mkdir(exist_ok=True)
    server = ServerProcess(root, database_url, port, extra_args=extra or ("--tls",))
    if add_admin:
        server.add_admin()
    server.start()
    assert server.url == f"https://127.0.0.1:{port}/"
    return server


@pytest.fixture
def genuine(postgres_cluster: PostgresCluster, short_tmp: Path) -> Iterator[TlsServer]:
    url = postgres_cluster.fresh_database()
    server = start_tls_server(short_tmp / "genuine", url, free_port())
    fingerprint = certificate_fingerprint((server.data_dir / "tls" / "server.crt").read_bytes())
    try:
        yield TlsServer(server, url, fingerprint)
    finally:
        server.kill()


def agent_login(agent: AgentProcess, url: str, *extra: str, check: bool = True) -> CliResult:
    return agent.comet(
        "login", "--server", url, "--username", "alice", "--password-stdin", *extra,
        stdin=PASSWORD + "\n", check=check,
    )  # fmt: skip


def login_attempts(database_url: str, username: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'login' AND target = %s",
            (username,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_man_in_the_middle_with_another_certificate_gets_nothing_but_handshakes(
    genuine: TlsServer, agent: AgentProcess, short_tmp: Path
) -> None:
    server = genuine.process
    admin = AdminCli(short_tmp / "admin.json", server)
    admin.login(extra=("--trust-fingerprint", genuine.fingerprint))
    admin("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    agent_login(agent, server.url, "--trust-fingerprint", genuine.fingerprint)
    wait_for(lambda: agent.status()["connected"], what="live connection to the genuine server")

    # The genuine server moves away; an impostor with its own certificate takes its
    # address and relays to it, as an attacker on the path would.
    address = server.url
    server.kill()
    moved = start_tls_server(server.data_dir, genuine.database_url, free_port(), add_admin=False)
    impostor_cert = ensure_self_signed(short_tmp, ["127.0.0.1"], tls_dir=short_tmp / "impostor")
    impostor = RecordingImpostor(
        server.port, Issued(impostor_cert.cert, impostor_cert.key), moved.port
    )
    impostor.start()
    try:
        impostor_fp = certificate_fingerprint(impostor_cert.cert.read_bytes())
        # The live connection is refused, naming both certificates and how to re-pin.
        status = wait_for(
            lambda: impostor_fp in (s := agent.status())["last_error"] and s,
            timeout=30,
            what="the agent to refuse the impostor",
        )
        assert not status["connected"]
        assert genuine.fingerprint in status["last_error"]
        assert "--trust-fingerprint" in status["last_error"]

        # Logging in again does not re-trust silently: the password never leaves.
        before = login_attempts(genuine.database_url, "alice")
        refused = agent_login(agent, address, check=False)
        assert refused.returncode != 0
        assert genuine.fingerprint in refused.stderr and impostor_fp in refused.stderr
        assert f"--trust-fingerprint {impostor_fp}" in refused.stderr
        refused = admin("user", "list", check=False)
        assert refused.returncode != 0
        assert genuine.fingerprint in refused.stderr and impostor_fp in refused.stderr
        refused = admin.login(check=False)
        assert refused.returncode != 0
        assert genuine.fingerprint in refused.stderr and impostor_fp in refused.stderr

        assert impostor.refused_handshakes + impostor.handshakes >= 4
        assert bytes(impostor.received) == b"", "a client sent data to the impostor"
        assert login_attempts(genuine.database_url, "alice") == before
        assert agent.status()["logged_in"], "the agent's login must survive the attack"

        # Control: a client told to trust the impostor's certificate does talk through
        # it, and the impostor sees the traffic; so the silence above is real.
        fooled = AdminCli(short_tmp / "fooled.json", server)
        fooled.login(extra=("--trust-fingerprint", impostor_fp))
        assert b"admin" in bytes(impostor.received)
    finally:
        impostor.stop()
        moved.kill()


def test_a_server_certificate_from_a_ca_given_with_ca_needs_no_confirmation(
    postgres_cluster: PostgresCluster, agent: AgentProcess, short_tmp: Path
) -> None:
    ca = make_ca(short_tmp / "ca")
    leaf = issue_server_certificate(ca, short_tmp / "leaf")
    server = start_tls_server(
        short_tmp / "server",
        postgres_cluster.fresh_database(),
        free_port(),
        "--tls-cert",
        str(leaf.cert),
        "--tls-key",
        str(leaf.key),
    )
    try:
        admin = AdminCli(short_tmp / "admin.json", server)
        admin.login(extra=("--ca", str(ca.cert)))  # not a terminal, no fingerprint
        admin("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
        agent_login(agent, server.url, "--ca", str(ca.cert))
        wait_for(lambda: agent.status()["connected"], what="live connection under the CA")

        # Another CA does not vouch for it; nor do the system roots.
        other = make_ca(short_tmp / "other-ca", "Someone Else's CA")
        refused = agent_login(agent, server.url, "--ca", str(other.cert), check=False)
        assert refused.returncode != 0 and "--ca" in refused.stderr
        fresh = AdminCli(short_tmp / "fresh.json", server)
        refused = fresh.login(check=False)
        assert refused.returncode != 0 and "--trust-fingerprint" in refused.stderr
        assert certificate_fingerprint(leaf.cert.read_bytes()) in refused.stderr
    finally:
        server.kill()


def set_password_kdf(database_url: str, username: str, kdf: KdfParams) -> None:
    """What a tampered server does: the account's KDF parameters (and the stored hash
    of the login key they yield, so the password still works) changed in place."""
    stored = hash_auth_key(derive_login_secrets(PASSWORD, kdf).auth_key)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE users SET kdf = %s, auth_hash = %s, auth_salt = %s WHERE username = %s",
            (json.dumps(kdf_to_json(kdf)), stored.auth_hash, stored.auth_salt, username),
        )


def test_lowered_scrypt_parameters_on_the_server_make_the_agent_refuse_to_log_in(
    genuine: TlsServer, agent: AgentProcess, short_tmp: Path
) -> None:
    server = genuine.process
    admin = AdminCli(short_tmp / "admin.json", server)
    admin.login(extra=("--trust-fingerprint", genuine.fingerprint))
    admin("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    with psycopg.connect(genuine.database_url) as conn:
        row = conn.execute("SELECT kdf FROM users WHERE username = 'alice'").fetchone()
    assert row is not None and row[0]["log2_n"] == 15  # new accounts get the floor
    # The account is stronger than the floor; the agent records that at login.
    set_password_kdf(genuine.database_url, "alice", KdfParams.new(log2_n=16))
    agent_login(agent, server.url, "--trust-fingerprint", genuine.fingerprint)

    # Lowered, though still at the floor: a downgrade from what the agent recorded.
    set_password_kdf(genuine.database_url, "alice", KdfParams.new(log2_n=15))
    before = login_attempts(genuine.database_url, "alice")
    refused = agent_login(agent, server.url, check=False)
    assert refused.returncode != 0
    assert "weaker" in refused.stderr and "N=2^15" in refused.stderr
    assert "N=2^16" in refused.stderr

    # Below the floor: refused by the agent that knows the account and by one that
    # never saw it, and by comet-admin.
    set_password_kdf(genuine.database_url, "alice", KdfParams.new(log2_n=10))
    with psycopg.connect(genuine.database_url) as conn:
        row = conn.execute("SELECT kdf FROM users WHERE username = 'admin'").fetchone()
        assert row is not None
        conn.execute(
            "UPDATE users SET kdf = %s WHERE username = 'admin'",
            (json.dumps({**row[0], "log2_n": 10}),),
        )
    refused = agent_login(agent, server.url, check=False)
    assert refused.returncode != 0
    assert "N=2^10" in refused.stderr and "N=2^15" in refused.stderr
    fresh_root = short_tmp / "fresh-agent"
    fresh_root.mkdir()
    fresh = AgentProcess(fresh_root)
    fresh.start()
    try:
        refused = agent_login(
            fresh, server.url, "--trust-fingerprint", genuine.fingerprint, check=False
        )
        assert refused.returncode != 0 and "N=2^10" in refused.stderr
    finally:
        fresh.kill()
    refused = admin.login(check=False)
    assert refused.returncode != 0 and "N=2^10" in refused.stderr
    # No login key was sent: the server saw no attempt.
    assert login_attempts(genuine.database_url, "alice") == before


def test_the_server_refuses_to_listen_in_plaintext_on_the_network(
    postgres_cluster: PostgresCluster, short_tmp: Path
) -> None:
    result = run_cli(
        "comet-server", "serve", "--data-dir", str(short_tmp), "--listen",
        f"0.0.0.0:{free_port()}", "--database-url", postgres_cluster.fresh_database(),
        check=False, timeout=30,
    )  # fmt: skip
    assert result.returncode != 0
    assert "refusing to serve plaintext" in result.stderr
    assert "--insecure-plaintext" in result.stderr
    assert "listening on" not in result.stdout


@pytest.mark.parametrize(
    ("host", "tls", "insecure", "allowed"),
    [
        ("127.0.0.1", False, False, True),
        ("127.0.0.2", False, False, True),
        ("[::1]", False, False, True),
        ("localhost", False, False, True),
        ("0.0.0.0", False, False, False),
        ("::", False, False, False),
        ("192.0.2.10", False, False, False),
        ("backup.example.com", False, False, False),
        ("0.0.0.0", True, False, True),
        ("0.0.0.0", False, True, True),
    ],
)
def test_plaintext_is_allowed_only_on_loopback_or_when_asked_for(
    host: str, tls: bool, insecure: bool, allowed: bool
) -> None:
    if allowed:
        require_safe_listen(host, tls=tls, insecure_plaintext=insecure)
    else:
        with pytest.raises(ServerError, match="refusing to serve plaintext"):
            require_safe_listen(host, tls=tls, insecure_plaintext=insecure)
