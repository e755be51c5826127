"""End-to-end with real processes: comet-server, comet-agent, comet and comet-admin."""

from __future__ import annotations

import stat
from pathlib import Path

from comet.server.embedded_postgres import EmbeddedPostgres
from tests.fixtures.processes import (
    ALICE_PASSWORD,
    AdminCli,
    AgentProcess,
    ServerProcess,
    free_port,
    wait_for,
)


def login_agent(
    agent: AgentProcess,
    server: ServerProcess,
    user: str = "alice",
    password: str = ALICE_PASSWORD,
    check: bool = True,
) -> object:
    return agent.comet(
        "login",
        "--server",
        server.url,
        "--username",
        user,
        "--password-stdin",
        "--device-name",
        "test-laptop",
        "--json",
        stdin=password + "\n",
        check=check,
    )


def add_alice(admin: AdminCli) -> None:
    admin("user", "add", "alice", "--password-stdin", stdin=ALICE_PASSWORD + "\n")


def test_admin_adds_user_whose_first_login_registers_the_device(
    server: ServerProcess, admin: AdminCli, agent: AgentProcess
) -> None:
    add_alice(admin)
    users = admin("user", "list", "--json").json()
    assert {u["username"]: u["admin"] for u in users} == {"admin": True, "alice": False}

    assert agent.status()["logged_in"] is False
    reply = agent.comet(
        "login",
        "--server",
        server.url,
        "--username",
        "alice",
        "--password-stdin",
        "--device-name",
        "test-laptop",
        "--json",
        stdin=ALICE_PASSWORD + "\n",
    ).json()
    assert reply["device_registered_now"] is True
    status = wait_for(lambda: (s := agent.status())["connected"] and s, what="live connection")
    assert status["logged_in"] and status["username"] == "alice"
    assert status["server"] == server.url and status["device_id"] == reply["device_id"]

    # The agent sees its stream open a moment before the server has recorded it.
    devices = wait_for(
        lambda: (d := admin("device", "list", "--json").json()) and d[0]["online"] and d,
        what="the device listed online",
    )
    assert len(devices) == 1
    device = devices[0]
    assert device["device_id"] == status["device_id"]
    assert device["user"] == "alice" and device["name"] == "test-laptop"
    assert device["online"] is True
    assert device["registered_at"].endswith("Z") and device["last_seen"].endswith("Z")
    # The agent beats at the server's interval (1 s here) from the moment it is accepted,
    # not first after its own default (15 s): else the device shows offline for a while.
    wait_for(
        lambda: admin("device", "list", "--json").json()[0]["last_seen"] > device["last_seen"],
        timeout=6,
        what="a heartbeat at the server's interval",
    )
    assert (
        admin("device", "list", "--online", "--user", "alice", "--json").json()[0]["device_id"]
        == device["device_id"]
    )

    # A second login on the same machine keeps the registration.
    again = agent.comet(
        "login",
        "--server",
        server.url,
        "--username",
        "alice",
        "--password-stdin",
        "--json",
        stdin=ALICE_PASSWORD + "\n",
    ).json()
    assert again["device_registered_now"] is False
    assert len(admin("device", "list", "--json").json()) == 1


def test_local_api_socket_is_private(agent: AgentProcess) -> None:
    mode = agent.socket.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(agent.state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((agent.state_dir / "agent.db").stat().st_mode) == 0o600


def test_wrong_passwords_are_refused_clearly_and_audited(
    server: ServerProcess, admin: AdminCli, agent: AgentProcess, short_tmp: Path
) -> None:
    add_alice(admin)
    bad_admin = AdminCli(short_tmp / "other-admin.json", server)
    result = bad_admin(
        "login",
        "--server",
        server.url,
        "--username",
        "admin",
        "--password-stdin",
        stdin="not-the-password\n",
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip() == "comet-admin: error: wrong username or password"

    result = agent.comet(
        "login",
        "--server",
        server.url,
        "--username",
        "alice",
        "--password-stdin",
        stdin="wrong-password\n",
        check=False,
    )
    assert result.returncode != 0 and "wrong username or password" in result.stderr
    assert agent.status()["logged_in"] is False

    events = admin("audit", "--action", "login", "--json").json()
    failed = [(e["target"], e["details"]) for e in events if not e["success"]]
    assert ("admin", "wrong username or password") in failed
    assert ("alice", "wrong username or password") in failed


def test_non_admins_cannot_use_admin_commands(
    server: ServerProcess, admin: AdminCli, short_tmp: Path
) -> None:
    add_alice(admin)
    as_alice = AdminCli(short_tmp / "alice-admin.json", server)
    result = as_alice(
        "login",
        "--server",
        server.url,
        "--username",
        "alice",
        "--password-stdin",
        stdin=ALICE_PASSWORD + "\n",
        check=False,
    )
    assert result.returncode != 0 and "not an administrator" in result.stderr
    result = as_alice("user", "list", check=False)
    assert result.returncode != 0 and "not logged in" in result.stderr


def test_agent_shows_the_outage_and_reconnects_when_the_server_returns(
    server: ServerProcess, admin: AdminCli, agent: AgentProcess
) -> None:
    add_alice(admin)
    login_agent(agent, server)
    wait_for(lambda: agent.status()["connected"], what="first connection")
    server.stop()
    wait_for(lambda: not agent.status()["connected"], what="agent to notice the outage")
    assert agent.status()["logged_in"] is True
    server.start()
    wait_for(lambda: agent.status()["connected"], timeout=30, what="reconnection")
    wait_for(lambda: admin("device", "list", "--online", "--json").json(), what="online again")


def test_lock_keeps_the_agent_logged_in_and_disconnect_logs_it_out(
    server: ServerProcess, admin: AdminCli, agent: AgentProcess
) -> None:
    add_alice(admin)
    login_agent(agent, server)
    wait_for(lambda: agent.status()["connected"])
    agent.comet("lock")
    status = agent.status()
    assert status["locked"] and status["logged_in"] and status["username"] == "alice"
    assert status["connected"]
    wrong = agent.comet("unlock-app", "--password-stdin", stdin="not-the-password\n", check=False)
    assert wrong.returncode != 0 and "wrong password" in wrong.stderr
    assert agent.status()["locked"]
    agent.comet("unlock-app", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
    assert not agent.status()["locked"]
    agent.comet("disconnect")
    status = wait_for(lambda: (s := agent.status()) and not s["connected"] and s)
    assert not status["logged_in"] and status["username"] is None
    wait_for(
        lambda: admin("device", "list", "--online", "--json").json() == [], what="device offline"
    )


def test_revoking_a_device_cuts_its_connection_and_credential(
    server: ServerProcess, admin: AdminCli, agent: AgentProcess
) -> None:
    add_alice(admin)
    login_agent(agent, server)
    device_id = wait_for(lambda: (s := agent.status())["connected"] and s["device_id"])
    admin("device", "revoke", device_id)
    status = wait_for(
        lambda: (s := agent.status()) and not s["logged_in"] and s,
        what="agent logged out by revocation",
    )
    assert "revoked" in (status["last_error"] or "")
    assert admin("device", "list", "--json").json()[0]["revoked"] is True


def test_remote_disconnect_stops_reconnecting_and_offline_dispatch_fails(
    server: ServerProcess, admin: AdminCli, agent: AgentProcess
) -> None:
    add_alice(admin)
    login_agent(agent, server)
    device_id = wait_for(lambda: (s := agent.status())["connected"] and s["device_id"])
    admin("dispatch", "drop", "--device", device_id)
    wait_for(lambda: agent.status()["connected"], what="reconnect after drop")
    admin("dispatch", "disconnect", "--device", device_id)
    wait_for(lambda: not agent.status()["logged_in"], what="remote disconnect")
    result = admin("dispatch", "refetch", "--device", device_id, check=False)
    assert result.returncode != 0
    assert f"device {device_id} is not connected" in result.stderr


def test_embedded_database_survives_sigkill_and_stops_on_clean_shutdown(
    short_tmp: Path, agent: AgentProcess
) -> None:
    data_dir = short_tmp / "embedded"
    data_dir.mkdir()
    server = ServerProcess(data_dir, None, free_port())
    server.add_admin()
    server.start()
    try:
        assert (data_dir / "server.url").read_text().strip() == server.url
        assert (data_dir / "database.url").read_text().startswith("postgresql://")
        admin = AdminCli(short_tmp / "admin.json", server)
        admin.login()
        add_alice(admin)
        login_agent(agent, server)
        device_id = wait_for(lambda: (s := agent.status())["connected"] and s["device_id"])

        server.kill()  # SIGKILL: no cleanup at all
        assert EmbeddedPostgres(data_dir).is_running()  # left behind, to be adopted
        server.start()
        wait_for(lambda: agent.status()["connected"], timeout=30, what="reconnect")
        admin.login()
        assert [u["username"] for u in admin("user", "list", "--json").json()] == ["admin", "alice"]
        assert [d["device_id"] for d in admin("device", "list", "--json").json()] == [device_id]

        assert server.stop() == 0
        assert not EmbeddedPostgres(data_dir).is_running()
    finally:
        server.kill()
        pg = EmbeddedPostgres(data_dir)
        if pg.is_running():
            pg.start()
            pg.stop()
