"""Every error is a sentence: the mistakes a person makes first, through the real
``comet``, ``comet-admin`` and ``comet-server`` processes, each answered with one line
that names what was wrong and what to do, never a Python exception; and nothing is
left half-written."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.processes import (
    BIN,
    AdminCli,
    AgentProcess,
    CliResult,
    ServerProcess,
    add_alice,
)

pytestmark = pytest.mark.timeout(300)

# Root without the capabilities that override file modes: a folder's mode refuses
# this agent as it would refuse a normal user's.
NO_DAC_OVERRIDE = (
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
    "--",
)


@pytest.fixture
def alice(server: ServerProcess, admin: AdminCli, short_tmp: Path) -> Iterator[AgentProcess]:
    root = short_tmp / "agent"
    root.mkdir()
    proc = AgentProcess(root, prefix=NO_DAC_OVERRIDE)
    proc.start()
    try:
        yield add_alice(server, admin, proc)
    finally:
        proc.kill()


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def refused(result: CliResult, *needles: str) -> str:
    """The one-line sentence of a refusal, checked for each of ``needles``."""
    err = result.stderr
    assert result.returncode == 1, (result.returncode, err)
    assert err.startswith("comet: error: ") or err.startswith("comet-admin: error: "), err
    assert err.count("\n") == 1, err
    for python in ("Errno", "Error(", "Traceback", "internal error"):
        assert python not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def restore_jobs(alice: AgentProcess) -> int:
    return sum(j["classification"] == "restore" for j in alice.comet("history", "--json").json())


def everything_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_mistakes_people_make_first_are_answered_with_a_sentence(
    alice: AgentProcess, admin: AdminCli, server: ServerProcess, short_tmp: Path
) -> None:
    """One server and agent for every case: each refusal is quick, the set-up is not."""
    src = short_tmp / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello\n")
    (src / "big.bin").write_bytes(os.urandom(2 << 20))
    alice.comet("vault", "add", "v", "--type", "local", "--path", str(short_tmp / "vault"))
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(src))
    backup = alice.comet("backup", "docs", "--vault", "v", "--wait", "--json")
    assert "\r" not in backup.stderr and "\x1b[" not in backup.stderr  # not a terminal
    snap = backup.json()["snapshot_id"]
    restores = restore_jobs(alice)

    # On a terminal, a progress line; the second backup knows the first one's size.
    drawn = run_on_terminal(
        str(BIN / "comet"), "--socket", str(alice.socket), "backup", "docs", "--vault", "v",
        "--wait",
    )  # fmt: skip
    assert "\r\x1b[K" in drawn and " files, " in drawn and "/2.0 MiB" in drawn, drawn
    assert "%" in drawn and "success" in drawn, drawn

    def restore(*args: str) -> CliResult:
        return alice.comet("restore", snap, "--vault", "v", *args, "--wait", check=False)

    # Wrong types of path, refused before any job starts or any byte is written.
    outdir = short_tmp / "outdir"
    outdir.mkdir()
    refused(restore("--archive", "tar", "--output", str(outdir)), "is a directory; give --output")
    assert everything_under(outdir) == [] and not list(short_tmp.glob("*.partial"))
    a_file = short_tmp / "a-file"
    a_file.write_text("x")
    refused(restore("--to", str(a_file)), f"{a_file} is a file, not a folder; give --to")
    refused(restore("--to", str(a_file / "sub")), f"{a_file} is a file, not a folder")
    for path in (a_file, a_file / "v"):
        added = alice.comet(
            "vault", "add", "v2", "--type", "local", "--path", str(path), check=False
        )
        refused(added, "is a file, not a folder", "--path")
    # Missing permissions and a read-only disk.
    locked = short_tmp / "locked"
    locked.mkdir(mode=0o500)
    refused(restore("--to", str(locked / "out")), f"cannot write in {locked}", "permission denied")
    added = alice.comet(
        "vault", "add", "v3", "--type", "local", "--path", str(locked / "v"), check=False
    )
    refused(added, "permission denied")
    with tmpfs(short_tmp / "ro", "ro,size=1m") as ro:
        refused(restore("--to", str(ro / "out")), "read-only")
    assert restore_jobs(alice) == restores
    # A full disk ends the restore with a sentence, and leaves no half-written file.
    with tmpfs(short_tmp / "full", "size=1m") as full:
        refused(restore("--to", str(full / "out")), "no space left on the disk", "free some")
        assert not any("big.bin" in p or "partial" in p for p in everything_under(full))

    # A restore path the snapshot does not hold fails, naming it, and writes nothing.
    target = short_tmp / "r"
    refused(
        restore("--to", str(target), "--path", "/no/such"),
        "/no/such is not in snapshot",
        "nothing was restored",
        "comet ls",
    )
    assert everything_under(target) == []

    # An include path that never existed is refused unless the person insists; the
    # backup then says it does not exist, not that it "vanished".
    ghost = str(short_tmp / "never-there")
    add = ("item", "add", "ghost", "--type", "files", "--include", str(src), "--include", ghost)
    refused(alice.comet(*add, check=False), ghost, "does not exist", "--allow-missing")
    alice.comet(*add, "--allow-missing")
    job = alice.comet("backup", "ghost", "--vault", "v", "--wait", "--json").json()
    log = alice.comet("job", "log", job["job_id"]).stdout
    assert job["status"] == "warning" and "vanished" not in log
    assert f"{ghost}: is included but does not exist on this device" in log

    # Unknown names and devices.
    refused(alice.comet("backup", "nope", "--vault", "v", check=False), "no Protected Item 'nope'")
    err = refused(admin("dispatch", "refetch", "--device", "nope", check=False))
    assert "no device named 'nope'" in err and "comet-admin device list" in err
    assert "not reachable" not in err

    # A reader that goes away (comet … | head) ends the command quietly.
    for program, args in (("comet", ("--socket", str(alice.socket))), ("comet-admin", ())):
        proc = subprocess.Popen(
            [str(BIN / program), *args, "history" if program == "comet" else "jobs"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COMET_ADMIN_CONFIG": str(admin.config)},
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # before the program has written anything
        assert proc.wait(timeout=60) == 141 and proc.stderr.read() == "", program

    # An agent that is not there, or no longer answers.
    stale = short_tmp / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))  # a socket file nobody listens on
    result = subprocess.run(
        [str(BIN / "comet"), "--socket", str(stale), "status"], capture_output=True, text=True
    )
    refused(CliResult(result.returncode, result.stdout, result.stderr), "does not answer at")

    check_second_server_is_refused(server, short_tmp)


def run_on_terminal(*args: str, timeout: float = 120) -> str:
    """Run a command with stdout and stderr on a pseudo-terminal; what it drew."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(leader)
    return out.decode(errors="replace")


def check_second_server_is_refused(server: ServerProcess, short_tmp: Path) -> None:
    started = time.monotonic()
    second = subprocess.run(
        [
            str(BIN / "comet-server"), "serve", "--data-dir", str(short_tmp / "second"),
            "--listen", f"127.0.0.1:{server.port}",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert second.returncode == 1, second.stderr
    assert f"port {server.port} is in use" in second.stderr, second.stderr
    assert "--listen" in second.stderr and "Traceback" not in second.stderr
    # Refused before its database was started (or even created).
    assert not (short_tmp / "second").exists()
    assert time.monotonic() - started < 60
