"""File names that are not UTF-8 (Linux names are bytes): a backup of them succeeds and
reaches the server's history, listings show their bytes as ``\\xNN``, and a restore
gives back the exact bytes. Before, the job's progress row (SQLite) and every proto
message refused the surrogate-escaped name: the backup failed as an internal error."""

from __future__ import annotations

import os
import time
from pathlib import Path

from comet.agent.printable import printable
from tests.fixtures.processes import AdminCli, AgentProcess


def test_printable_keeps_utf8_and_shows_other_bytes() -> None:
    assert printable("/home/ünï/📁") == "/home/ünï/📁"
    assert printable(os.fsdecode(b"/caf\xe9.txt")) == "/caf\\xe9.txt"
    assert printable("lone \ud800") == "lone \\ud800"
    assert printable(os.fsdecode(b"/ok/\xff")).encode()  # valid UTF-8, nothing refused


def test_backup_list_find_and_restore_names_that_are_not_utf8(
    admin: AdminCli, alice: AgentProcess, short_tmp: Path
) -> None:
    src = os.fsencode(short_tmp / "src")
    os.makedirs(src + b"/dir\xff")
    with open(src + b"/caf\xe9.txt", "wb") as f:
        f.write(b"latin-1 name")
    with open(src + b"/dir\xff/in\xfe", "wb") as f:
        f.write(b"inner")
    os.symlink(b"target\xfd", src + b"/link\xfc")
    alice.comet("vault", "add", "v", "--type", "local", "--path", str(short_tmp / "vault"))
    alice.comet("item", "add", "odd", "--type", "files", "--include", os.fsdecode(src))

    job = alice.comet("backup", "odd", "--vault", "v", "--wait", "--json").json()
    assert job["status"] == "success", job
    assert job["files"] == 2

    shown = os.fsdecode(src)
    rows = alice.comet("ls", "-R", "--json", "--vault", "v", "latest").json()
    paths = {r["path"]: r for r in rows}
    assert f"{shown}/caf\\xe9.txt" in paths
    assert f"{shown}/dir\\xff/in\\xfe" in paths
    assert paths[f"{shown}/link\\xfc"]["link_target"] == "target\\xfd"
    found = alice.comet("find", "in*", "--vault", "v", "--json").json()
    assert [r["path"] for r in found] == [f"{shown}/dir\\xff/in\\xfe"]

    dest = short_tmp / "out"
    restored = alice.comet(
        "restore", "latest", "--vault", "v", "--to", str(dest), "--wait", "--json"
    )
    assert restored.json()["status"] == "success"
    back = os.fsencode(dest) + src
    with open(back + b"/caf\xe9.txt", "rb") as f:
        assert f.read() == b"latin-1 name"
    with open(back + b"/dir\xff/in\xfe", "rb") as f:
        assert f.read() == b"inner"
    assert os.readlink(back + b"/link\xfc") == b"target\xfd"

    # The job record reached the server's history (the outbox did not stick on it).
    deadline = time.monotonic() + 30
    while alice.status()["outbox_pending"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alice.status()["outbox_pending"] == 0
    history = admin("jobs", "--json").json()
    assert job["job_id"] in {j["job_id"] for j in history}
