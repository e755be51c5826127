"""What Linux allows and a backup must keep, end to end through the real agent: file
names that are not UTF-8 (names are bytes) back up, reach the server's history, list
with their bytes shown as ``\\xNN`` and restore with the exact bytes; files dated
past what 64-bit nanoseconds hold (after 2554, before 1677) list and restore."""

from __future__ import annotations

import os
import shutil
import tempfile
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


def test_files_dated_past_64_bit_nanoseconds_list_and_restore(
    admin: AdminCli, alice: AgentProcess, short_tmp: Path
) -> None:
    """A file dated 2600 or 1600 has an mtime in nanoseconds past 64 bits; the fast
    JSON reader read such numbers as floats, and the snapshot could not be read back.
    /dev/shm (tmpfs) keeps such times; ext4 would clamp them."""
    src = Path(tempfile.mkdtemp(prefix="comet-dates-", dir="/dev/shm"))
    try:
        (src / "future").write_text("from 2600")
        (src / "past").write_text("from 1600")
        future_ns = 19_880_899_200 * 10**9  # 2600-01-01
        past_ns = -11_676_096_000 * 10**9  # 1600-01-01
        os.utime(src / "future", ns=(future_ns, future_ns))
        os.utime(src / "past", ns=(past_ns, past_ns))
        alice.comet("vault", "add", "v", "--type", "local", "--path", str(short_tmp / "vault"))
        alice.comet("item", "add", "dates", "--type", "files", "--include", str(src))
        job = alice.comet("backup", "dates", "--vault", "v", "--wait", "--json").json()
        assert job["status"] == "success", job

        rows = alice.comet("ls", "-R", "--json", "--vault", "v", "latest").json()
        times = {r["path"].rsplit("/", 1)[-1]: r["mtime"] for r in rows}
        assert times["future"].startswith("2600-01-01")
        assert times["past"].startswith("1600-01-01")
        dest = short_tmp / "out"
        restore = ("restore", "latest", "--vault", "v", "--to", str(dest), "--wait", "--json")
        assert alice.comet(*restore).json()["status"] == "success"
        back = dest / src.relative_to("/")
        assert (back / "future").read_text() == "from 2600"
        # ext4 under short_tmp clamps to its own range; the restore must not fail on it.
        assert (back / "past").stat().st_mtime_ns < 0
    finally:
        shutil.rmtree(src, ignore_errors=True)
