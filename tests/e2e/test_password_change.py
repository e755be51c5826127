"""Changing the password re-wraps every vault key: old data stays readable everywhere,
the old password stops working, and a wrong current password changes nothing."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.processes import ALICE_PASSWORD, AgentProcess, ServerProcess, wait_for

NEW_PASSWORD = "a-brand-new-password"


def test_password_change_keeps_every_vault_readable_on_every_device(
    server: ServerProcess, alice: AgentProcess, short_tmp: Path
) -> None:
    source = short_tmp / "src"
    source.mkdir()
    (source / "letter.txt").write_text("dear diary\n")
    alice.comet("vault", "add", "v", "--type", "local", "--path", str(short_tmp / "vault"))
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(source))
    snapshot = alice.comet("backup", "docs", "--vault", "v", "--wait", "--json").json()[
        "snapshot_id"
    ]

    wrong = alice.comet(
        "change-password",
        "--password-stdin",
        stdin=f"not-my-password\n{NEW_PASSWORD}\n",
        check=False,
    )
    assert wrong.returncode != 0 and "current password is wrong" in wrong.stderr
    alice.comet("change-password", "--password-stdin", stdin=f"{ALICE_PASSWORD}\n{NEW_PASSWORD}\n")

    # This device still backs up and restores with its re-wrapped key.
    alice.comet("backup", "docs", "--vault", "v", "--wait")
    dest = short_tmp / "dest"
    alice.comet("restore", snapshot, "--vault", "v", "--to", str(dest), "--wait")
    assert (dest / str(source).lstrip("/") / "letter.txt").read_text() == "dear diary\n"

    root = short_tmp / "device2"
    root.mkdir()
    second = AgentProcess(root)
    second.start()
    try:
        old = second.comet(
            "login",
            "--server",
            server.url,
            "--username",
            "alice",
            "--password-stdin",
            stdin=ALICE_PASSWORD + "\n",
            check=False,
        )
        assert old.returncode != 0 and "wrong username or password" in old.stderr
        second.comet(
            "login",
            "--server",
            server.url,
            "--username",
            "alice",
            "--password-stdin",
            stdin=NEW_PASSWORD + "\n",
        )
        wait_for(lambda: second.status()["connected"])
        dest2 = short_tmp / "dest2"
        second.comet("restore", snapshot, "--vault", "v", "--to", str(dest2), "--wait")
        assert (dest2 / str(source).lstrip("/") / "letter.txt").read_text() == "dear diary\n"
    finally:
        second.kill()
