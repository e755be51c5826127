"""Two-factor authentication for everyone, through the CLIs: a user enrols from
`comet` (no device is registered), logs in with a code and turns it off; an admin
enrols from `comet-admin`; a SUPER admin resets a user's 2FA (audited). Codes are
computed here from the secret the enrolment shows, as an authenticator app would."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from comet.server.totp import code_at
from tests.fixtures.processes import (
    ADMIN_PASSWORD,
    ALICE_PASSWORD,
    AdminCli,
    AgentProcess,
    ServerProcess,
)


def now_code(secret: str, *, ahead: int = 0) -> str:
    # A code used once is spent: the next login takes the next step's code (within
    # the server's allowed drift), as a person waiting for a fresh code would.
    return code_at(secret, datetime.now(UTC) + timedelta(seconds=30 * ahead))


def step_now() -> int:
    return int(time.time()) // 30


def code_after(secret: str, used_step: int) -> str:
    """A code for a step after ``used_step`` that the server accepts now (one step of
    drift ahead at most): waits, like a person, for the clock to reach it."""
    while step_now() + 1 <= used_step:
        time.sleep(0.5)
    return now_code(secret, ahead=1)


def user_row(admin: AdminCli, name: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = admin("user", "list", "--json").json()
    (row,) = [r for r in rows if r["username"] == name]
    return row


def login(alice: AgentProcess, server: ServerProcess, *extra: str, check: bool = True) -> Any:
    return alice.comet(
        "login", "--server", server.url, "--username", "alice", "--password-stdin", *extra,
        stdin=ALICE_PASSWORD + "\n", check=check,
    )  # fmt: skip


def enrol_user(alice: AgentProcess) -> str:
    begun = alice.comet("totp", "enable", "--begin-only", "--json").json()
    assert begun["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={begun['secret']}" in begun["otpauth_uri"]
    secret: str = begun["secret"]
    alice.comet("totp", "confirm", "--code-stdin", stdin=now_code(secret) + "\n")
    return secret


def test_a_user_enrols_logs_in_with_a_code_and_disables_it_from_the_cli(
    server: ServerProcess, admin: AdminCli, alice: AgentProcess
) -> None:
    assert user_row(admin, "alice")["totp_enabled"] is False
    wrong = alice.comet("totp", "enable", "--code-stdin", stdin="000000\n", check=False)
    assert wrong.returncode != 0 and "wrong two-factor code" in wrong.stderr
    assert "█" in wrong.stdout  # the QR code was shown on the terminal

    secret = enrol_user(alice)
    row = user_row(admin, "alice")
    assert row["totp_enabled"] is True and row["devices"] == 1  # no extra device
    assert re.search(r"^alice\s+user\s+on\s", admin("user", "list").stdout, re.M)

    alice.comet("disconnect")
    refused = login(alice, server, check=False)
    assert refused.returncode != 0 and "two-factor" in refused.stderr
    login_step = step_now() + 1
    login(alice, server, "--totp", now_code(secret, ahead=1))
    assert alice.status()["logged_in"]
    assert user_row(admin, "alice")["devices"] == 1

    bad = alice.comet("totp", "disable", "--code-stdin", stdin="12345\n", check=False)
    assert bad.returncode != 0 and "6 digits" in bad.stderr
    # The login's code is spent (no replay): disabling takes a later one.
    alice.comet("totp", "disable", "--code-stdin", stdin=code_after(secret, login_step) + "\n")
    assert user_row(admin, "alice")["totp_enabled"] is False


def test_an_admin_enrols_and_a_super_admin_resets_a_users_2fa(
    server: ServerProcess, admin: AdminCli, alice: AgentProcess
) -> None:
    begun = admin("totp", "enable", "--begin-only", "--json").json()
    admin("totp", "confirm", "--code-stdin", stdin=now_code(begun["secret"]) + "\n")
    assert user_row(admin, "admin")["totp_enabled"] is True
    login_args = ("login", "--server", server.url, "--username", "admin", "--password-stdin")
    refused = admin(*login_args, stdin=ADMIN_PASSWORD + "\n", check=False)
    assert refused.returncode != 0 and "two-factor" in refused.stderr
    code = now_code(begun["secret"], ahead=1)
    admin(*login_args, "--totp", code, stdin=ADMIN_PASSWORD + "\n")

    enrol_user(alice)
    admin("user", "reset-totp", "alice")
    assert user_row(admin, "alice")["totp_enabled"] is False
    login(alice, server)  # no code needed any more
    events = admin("audit", "--action", "user.reset_totp", "--json").json()
    assert [(e["actor"], e["target"], e["success"]) for e in events] == [("admin", "alice", True)]
    assert events[0]["source_address"]
    missing = admin("user", "reset-totp", "nobody", check=False)
    assert missing.returncode != 0 and "nobody" in missing.stderr
