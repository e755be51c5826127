"""Idle agent memory: the resident set of a logged-in ``comet-agent run`` connected to
its server with no job, the number issue 17 bounds (≤ 60 MiB).

    .venv/bin/python -m bench.agent_idle [--settle 5] [--samples 3] [--json FILE]

Starts the real ``comet-server serve`` (embedded PostgreSQL) and ``comet-agent run``
exactly as ``bench/run`` does, logs the agent in, waits until it reports itself
connected, lets it settle, then reads ``VmRSS`` and ``VmHWM`` from
``/proc/PID/status``. Each sample is a fresh agent process (restarted, reconnected, as
``bench/run`` restarts it before every job; the process that ran the login keeps the
key-derivation libraries it used).
Also prints which of the big optional libraries the idle agent has mapped (their
native extension modules in ``/proc/PID/maps``): a lazily loaded backend shows none.
Imports nothing from Comet."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.comet_client import CometClient

# Native parts of the libraries an idle agent should not load, as they appear in maps.
WATCHED = {
    "cryptography": "_rust.abi3.so",
    "sqlalchemy": "sqlalchemy/",
    "paramiko/nacl": "_sodium.abi3.so",
    "pyfuse3": "pyfuse3",
    "trio/cffi": "_cffi_backend",
    "PyQt6": "PyQt6",
    "psycopg": "psycopg",
}


def status_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0])
    return out


def mapped(pid: int) -> list[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return sorted(name for name, needle in WATCHED.items() if needle in maps)


def _after_backup(client: CometClient, source: Path, work: Path, settle: float) -> dict[str, int]:
    """Back ``source`` up with the running agent, then read it once the job has ended."""
    agent = client.agent
    agent.comet("vault", "add", "idle-bench", "--type", "local", "--path", str(work / "vault"))
    agent.comet("item", "add", "idle-bench", "--type", "files", "--include", str(source))
    agent.comet("backup", "idle-bench", "--vault", "idle-bench", "--wait", "--json")
    time.sleep(settle)
    return status_kib(agent.pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.agent_idle", description=__doc__)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds idle before reading")
    parser.add_argument("--samples", type=int, default=3, help="fresh agent processes")
    parser.add_argument("--json", type=Path, default=None, help="also write the samples here")
    parser.add_argument(
        "--after-backup",
        type=Path,
        default=None,
        metavar="DIR",
        help="then back DIR up to a local vault and read the agent again once idle",
    )
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="comet-idle-", dir="/tmp") as work:
        client = CometClient(Path(work))
        try:
            client.start()
            samples: list[dict[str, int]] = []
            libraries: list[list[str]] = []
            for n in range(args.samples):
                client.agent.restart()  # not the process that ran the login
                time.sleep(args.settle)
                pid = client.agent.pid
                sample = status_kib(pid)
                samples.append(sample)
                libraries.append(mapped(pid))
                fields = ", ".join(f"{k} {v} kB" for k, v in sample.items())
                print(f"sample {n + 1}: {fields}; optional libraries mapped: {libraries[-1]}")
            if args.after_backup is not None:
                after = _after_backup(client, args.after_backup, Path(work), args.settle)
        finally:
            client.close()
    rss = statistics.median(s["VmRSS"] for s in samples) / 1024
    hwm = statistics.median(s["VmHWM"] for s in samples) / 1024
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"idle agent: VmRSS {rss:.1f} MiB, VmHWM {hwm:.1f} MiB (median of {len(samples)})")
    if args.after_backup is not None:
        print(
            f"idle again after a backup of {args.after_backup}: VmRSS {after['VmRSS'] / 1024:.1f}"
            f" MiB (the job's peak VmHWM {after['VmHWM'] / 1024:.1f} MiB)"
        )
    if args.json is not None:
        report = {"load": load, "samples": samples, "mapped": libraries}
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
