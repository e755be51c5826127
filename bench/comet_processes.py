"""``CometServer`` and ``CometAgent``: the real ``comet-server serve`` and
``comet-agent run`` processes, started from the console scripts next to the running
Python exactly as an admin would start them. Imports nothing from Comet."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from bench.measure import BenchError, run_quiet

BIN = Path(sys.executable).parent
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(argv: list[str], *, ready: str, log: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start a service and wait for the line that says it is ready; afterwards its
    stdout is drained into ``log`` so a full pipe never blocks it."""
    out = log.open("a")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=out, text=True, env=env)
    assert proc.stdout is not None
    line = _read_line(proc.stdout, START_TIMEOUT)
    if not line.startswith(ready):
        proc.kill()
        proc.wait(timeout=10)
        raise BenchError(f"{Path(argv[0]).name} did not start ({line.strip()!r}); see {log}")
    threading.Thread(target=_drain, args=(proc.stdout, out), daemon=True).start()
    return proc


def _read_line(stream: IO[str], timeout: float) -> str:
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return stream.readline()


def _drain(stream: IO[str], out: IO[str]) -> None:
    for line in stream:
        out.write(line)
        out.flush()


def _stop(proc: subprocess.Popen[str] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class CometServer:
    """``comet-server serve --data-dir DIR`` with its embedded PostgreSQL."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = log
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [str(BIN / "comet-server"), "serve", "--data-dir", str(self.data_dir)]
        argv += ["--listen", f"127.0.0.1:{self.port}"]
        env = {**os.environ, "GRPC_VERBOSITY": "ERROR"}
        self._proc = _start(argv, ready="listening on", log=self.log, env=env)

    def add_admin(self, username: str, password: str) -> None:
        argv = [str(BIN / "comet-server"), "add-admin", username, "--password-stdin"]
        argv += ["--data-dir", str(self.data_dir)]
        run_quiet(argv, log=self.log, stdin=password + "\n")

    def stop(self) -> None:
        _stop(self._proc)
        self._proc = None


class CometAgent:
    """``comet-agent run`` with its own state dir; the ``comet`` CLI talks to it."""

    def __init__(self, state_dir: Path, socket_path: Path, log: Path) -> None:
        self.state_dir = state_dir
        self.socket = socket_path
        self.log = log
        self._proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise BenchError("the Comet agent is not running")
        return self._proc.pid

    def start(self) -> None:
        argv = [str(BIN / "comet-agent"), "run", "--state-dir", str(self.state_dir)]
        argv += ["--socket", str(self.socket)]
        env = {**os.environ, "COMET_AGENT_RECONNECT_MAX": "1", "GRPC_VERBOSITY": "ERROR"}
        self._proc = _start(argv, ready="agent listening", log=self.log, env=env)

    def stop(self) -> None:
        _stop(self._proc)
        self._proc = None

    def restart(self) -> None:
        """A fresh process, so its VmHWM covers only what happens next."""
        self.stop()
        self.start()
        self.wait_connected()

    def comet(self, *args: str, stdin: str | None = None) -> str:
        argv = [str(BIN / "comet"), "--socket", str(self.socket), *args]
        return run_quiet(argv, log=self.log, stdin=stdin)

    def comet_json(self, *args: str) -> Any:
        return json.loads(self.comet(*args))

    def wait_connected(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.comet_json("status", "--json").get("connected"):
            if time.monotonic() > deadline:
                raise BenchError(f"the Comet agent did not connect to the server; see {self.log}")
            time.sleep(0.1)
