"""``comet mount`` end to end: the real agent serves the mount, the CLI waits in the
foreground, ``comet unmount`` and Ctrl-C unmount, a killed agent's mount is cleared by
``fusermount3 -u``."""

from __future__ import annotations

import errno
import filecmp
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.processes import BIN, AgentProcess


def mount_cli(alice: AgentProcess, mnt: Path, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            str(BIN / "comet"),
            "--socket",
            str(alice.socket),
            "mount",
            "--vault",
            "v",
            str(mnt),
            "--cache-size",
            "64M",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(f"mounted {mnt}"), (line, proc.stderr.read() if proc.poll() else "")
    return proc


def snapshot_root(mnt: Path, src: Path) -> Path:
    item = mnt / "by-item" / "docs"
    return item / os.readlink(item / "latest") / str(src).lstrip("/")


def test_mount_read_unmount_through_agent_and_cli(alice: AgentProcess, short_tmp: Path) -> None:
    src, vault, mnt = short_tmp / "src", short_tmp / "vault", short_tmp / "mnt"
    (src / "sub").mkdir(parents=True)
    (src / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (src / "sub" / "note.txt").write_text("hello\n")
    os.symlink("sub/note.txt", src / "link")
    mnt.mkdir()
    alice.comet("vault", "add", "v", "--type", "local", "--path", str(vault))
    alice.comet("item", "add", "docs", "--type", "files", "--include", str(src))
    alice.comet("backup", "docs", "--vault", "v", "--wait")
    proc = mount_cli(alice, mnt)
    try:
        root = snapshot_root(mnt, src)
        assert filecmp.cmp(src / "big.bin", root / "big.bin", shallow=False)
        assert (root / "sub" / "note.txt").read_text() == "hello\n"
        assert os.readlink(root / "link") == "sub/note.txt"
        # A second mount at the same place is refused with a clear message.
        again = alice.comet("mount", "--vault", "v", str(mnt), check=False)
        assert again.returncode != 0 and "mount" in again.stderr
        alice.comet("unmount", str(mnt))
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)
    assert not os.path.ismount(mnt) and os.listdir(mnt) == []
    gone = alice.comet("unmount", str(mnt), check=False)
    assert gone.returncode != 0 and "no mount" in gone.stderr

    # Ctrl-C in the foreground unmounts too.
    proc = mount_cli(alice, mnt, "--item", "docs")
    try:
        assert os.path.ismount(mnt)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert not os.path.ismount(mnt)
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)

    # A killed agent leaves a dead mount that fusermount3 -u clears.
    proc = mount_cli(alice, mnt, "--detach")
    assert proc.wait(timeout=20) == 0
    assert (snapshot_root(mnt, src) / "sub" / "note.txt").read_text() == "hello\n"
    alice.kill()
    with pytest.raises(OSError) as e:
        os.listdir(mnt)
    assert e.value.errno == errno.ENOTCONN
    alice.start()
    dead = alice.comet("mount", "--vault", "v", str(mnt), check=False)
    assert dead.returncode != 0 and "fusermount3 -u" in dead.stderr, dead.stderr
    subprocess.run(["fusermount3", "-u", str(mnt)], check=True)
    assert not os.path.ismount(mnt) and os.listdir(mnt) == []
