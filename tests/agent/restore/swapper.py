"""A process of the unprivileged user ``nobody`` that keeps swapping a folder it owns
for a symlink to a canary, racing a root restore (used by the restore race tests)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

NOBODY = 65534
# The swapper runs as nobody, who cannot reach the project's virtualenv.
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"

# Runs as nobody: swap ``victim`` (a directory it owns) for a symlink to the canary and
# back, as fast as it can, until told to stop. Writes ``ready`` after its first swap.
SWAPPER = r"""
import os, sys
path, canary, ready, stop, count = sys.argv[1:6]
moved = path + ".away"
first = True
swaps = 0
while not os.path.exists(stop):
    try:
        os.rename(path, moved)
        os.symlink(canary, path)
        swaps += 1
    except OSError:
        pass
    if first:
        open(ready, "w").close()
        first = False
    try:
        os.unlink(path)
    except OSError:
        pass
    try:
        os.rename(moved, path)
    except OSError:
        pass
with open(count, "w") as f:
    f.write(str(swaps))
"""

State = dict[str, tuple[int, int, int, int, str]]


def state_of(root: Path) -> State:
    out: State = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        out[str(path)] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, content)
    return out


def attack(inner: Path, canary: Path, base: Path) -> tuple[subprocess.Popen[bytes], Path]:
    signals = base / "signals"  # the swapper's own folder, for ready/stop
    signals.mkdir(exist_ok=True)
    os.chown(signals, NOBODY, NOBODY)
    ready, stop = signals / "ready", signals / "stop"
    for f in (ready, stop):
        f.unlink(missing_ok=True)
    swapper = subprocess.Popen(
        ["runuser", "-u", "nobody", "--", SYSTEM_PYTHON, "-I", "-c", SWAPPER,
         str(inner / "victim"), str(canary), str(ready), str(stop), str(signals / "count")],
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert swapper.poll() is None and time.monotonic() < deadline, "swapper did not start"
        time.sleep(0.005)
    return swapper, stop


def stop_attack(swapper: subprocess.Popen[bytes], stop: Path) -> int:
    """Stop the swapper; return how many times it swapped the symlink in."""
    stop.touch()
    assert swapper.wait(timeout=20) == 0
    return int((stop.parent / "count").read_text())
