"""``CometClient``: Comet through its real path. One ``comet-server serve`` (embedded
PostgreSQL) and one ``comet-agent run`` for the whole benchmark; ``comet login``, one
``comet item add`` per corpus, one ``comet vault add --type local`` per case, then
``comet backup --wait --json`` and ``comet restore --to DIR --wait --json``.

Peak RSS is the agent's ``VmHWM``: the agent is restarted before every timed operation,
so its peak covers start-up plus that one job. Imports nothing from Comet."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.comet_processes import BIN, CometAgent, CometServer
from bench.measure import BenchError, Measurement, peak_rss_of, run_measured
from bench.mount_rows import READY_TIMEOUT, mount_dir, wait_for_path
from bench.tool import Case

ADMIN_PASSWORD = "bench-admin-password"
USER_PASSWORD = "bench-user-password"
OK_STATUSES = ("success", "warning")
PER_FILE_LIMIT = 5000  # one program run per file: too slow for bigger corpora


class CometClient:
    name = "comet"

    def __init__(self, workdir: Path, *, profile_dir: Path | None = None) -> None:
        self._profile_dir = profile_dir
        self._root = workdir / "comet"
        self._root.mkdir(parents=True, exist_ok=True)
        # Unix socket paths are limited to 107 bytes, and the embedded PostgreSQL runs as
        # the postgres OS user, which must reach its data dir: a short, open dir in /tmp.
        self._runtime = Path(tempfile.mkdtemp(prefix="cb-", dir="/tmp"))
        os.chmod(self._runtime, 0o755)
        self._server = CometServer(self._runtime / "server", self._root / "server.log")
        self._agent = CometAgent(
            self._root / "agent-state", self._runtime / "agent.sock", self._root / "agent.log"
        )
        self._items: set[str] = set()
        self._vaults: dict[tuple[str, int], str] = {}
        self._snapshots: dict[tuple[str, int], str] = {}
        self.jobs: list[dict[str, Any]] = []
        self._backups = 0
        self.last_cli_rss = 0

    def start(self) -> None:
        """Server, first admin, a user for the device, the agent logged in as that user."""
        self._server.start()
        self._server.add_admin("admin", ADMIN_PASSWORD)
        admin_env = {"COMET_ADMIN_CONFIG": str(self._root / "admin.json")}
        login = ["login", "--server", self._server.url, "--username", "admin"]
        self._admin(*login, "--password-stdin", stdin=ADMIN_PASSWORD, env=admin_env)
        add_user = ["user", "add", "bench", "--password-stdin"]
        self._admin(*add_user, stdin=USER_PASSWORD, env=admin_env)
        self._agent.start()
        self._agent.comet(
            "login",
            "--server",
            self._server.url,
            "--username",
            "bench",
            "--password-stdin",
            "--device-name",
            "bench-device",
            stdin=USER_PASSWORD + "\n",
        )
        self._agent.wait_connected()

    @property
    def agent(self) -> CometAgent:
        """The running ``comet-agent run`` process (for measurements of its own)."""
        return self._agent

    def _admin(self, *args: str, stdin: str, env: dict[str, str]) -> None:
        result = subprocess.run(
            [str(BIN / "comet-admin"), *args],
            input=stdin + "\n",
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise BenchError(f"comet-admin {args[0]} failed: {result.stderr.strip()}")

    def version(self) -> str:
        try:
            here = str(Path(__file__).resolve().parent)
            argv = ["git", "-C", here, "rev-parse", "--short", "HEAD"]
            result = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
            rev = result.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            rev = "unknown"
        return f"git {rev} (working tree)"

    def settings(self) -> str:
        return (
            "AES-256-GCM, zstd level 3, FastCDC 256 KiB/1 MiB/4 MiB, 16 MiB packs, "
            "restore writes holes for zero runs"
        )

    def init(self, case: Case) -> None:
        corpus = case.corpus
        if corpus.name not in self._items:
            self._agent.comet(
                "item", "add", corpus.name, "--type", "files", "--include", str(corpus.root)
            )
            self._items.add(corpus.name)
        name = f"{corpus.name}-run{case.run}"
        out = self._agent.comet_json(
            "vault", "add", name, "--type", "local", "--path", str(case.repo_dir), "--json"
        )
        self._vaults[(corpus.name, case.run)] = str(out["vault_id"])
        self._backups = 0

    def backup(self, case: Case) -> Measurement:
        vault = self._vaults[(case.corpus.name, case.run)]
        self._backups += 1
        label = f"{case.corpus.name}-run{case.run}-backup{self._backups}"
        job, measurement = self._timed_job(label, "backup", case.corpus.name, "--vault", vault)
        self._snapshots[(case.corpus.name, case.run)] = str(job["snapshot_id"])
        return measurement

    def restore(self, case: Case, dest: Path) -> Measurement:
        key = (case.corpus.name, case.run)
        label = f"{case.corpus.name}-run{case.run}-restore"
        _job, measurement = self._timed_job(
            label, "restore", self._snapshots[key], "--vault", self._vaults[key], "--to", str(dest)
        )
        return measurement

    def find(self, case: Case, pattern: str) -> Measurement:
        """``comet find PATTERN`` over the case's latest snapshot (a walk of every tree),
        the agent restarted first so its VmHWM covers only this search."""
        key = (case.corpus.name, case.run)
        self._agent.restart()
        args = ["find", pattern, "--vault", self._vaults[key], "--snapshot", self._snapshots[key]]
        start = time.perf_counter()
        self._agent.comet(*args, "--limit", "1000000", "--json")
        seconds = time.perf_counter() - start
        return Measurement(seconds=seconds, peak_rss_bytes=peak_rss_of(self._agent.pid))

    def list_all(self, case: Case) -> Measurement:
        """``comet ls -R`` of the case's latest snapshot (output thrown away), the agent
        restarted first so its VmHWM covers only this listing. The CLI's own peak (it
        holds the whole reply) is kept in ``last_cli_rss``."""
        key = (case.corpus.name, case.run)
        self._agent.restart()
        argv = [str(BIN / "comet"), "--socket", str(self._agent.socket), "ls", "-R", "--json"]
        argv += ["--vault", self._vaults[key], self._snapshots[key]]
        cli = run_measured(argv, env=dict(os.environ), log=case.log, discard_stdout=True)
        self.last_cli_rss = cli.peak_rss_bytes
        return Measurement(seconds=cli.seconds, peak_rss_bytes=peak_rss_of(self._agent.pid))

    @contextmanager
    def mount(self, case: Case) -> Iterator[Path]:
        """``comet mount`` (served by the agent) of the case's vault, this corpus's item;
        the corpus is under ``by-item/<item>/latest/<absolute path>``."""
        vault = self._vaults[(case.corpus.name, case.run)]
        with mount_dir() as mnt, case.log.open("a") as log:
            argv = [str(BIN / "comet"), "--socket", str(self._agent.socket), "mount"]
            argv += ["--vault", vault, "--item", case.corpus.name, str(mnt)]
            proc = subprocess.Popen(argv, stdout=log, stderr=log)
            try:
                latest = mnt / "by-item" / case.corpus.name / "latest"
                wait_for_path(latest, "comet mount", READY_TIMEOUT)
                yield latest / case.corpus.root.relative_to("/")
            finally:
                self._agent.comet("unmount", str(mnt))
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)

    def restore_reads(self, case: Case, out: Path) -> dict[str, int]:
        """Vault reads (GETs) of a full restore into each target, from each job's log
        line "fetched N bytes from the vault in M reads". Untimed. Running the program
        once per file is skipped for corpora of more than ``PER_FILE_LIMIT`` files."""
        key = (case.corpus.name, case.run)
        base = ("restore", self._snapshots[key], "--vault", self._vaults[key])
        targets: dict[str, tuple[str, ...]] = {
            "directory": ("--to", str(out / "dir")),
            "simulate": ("--simulate",),
            "program_archive": ("--program", "cat > /dev/null", "--as-archive"),
            "tar": ("--archive", "tar", "--output", str(out / "out.tar")),
            "zip": ("--archive", "zip", "--output", str(out / "out.zip")),
        }
        if len(case.corpus.files) <= PER_FILE_LIMIT:
            targets["program_per_file"] = ("--program", "cat > /dev/null", "--per-file")
        reads: dict[str, int] = {}
        for name, args in targets.items():
            job = self._agent.comet_json(*base, *args, "--wait", "--json")
            log = self._agent.comet("job", "log", str(job["job_id"]))
            found = re.search(r"from the vault in (\d+) reads", log)
            if job.get("status") not in OK_STATUSES or found is None:
                raise BenchError(f"comet restore {' '.join(args)}: {job.get('status')}: {log}")
            reads[name] = int(found.group(1))
            for leftover in out.iterdir():
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
        return reads

    def _timed_job(self, label: str, *args: str) -> tuple[dict[str, Any], Measurement]:
        self._agent.restart()
        idle_rss = peak_rss_of(self._agent.pid)
        profiler = self._start_profiler(label)
        try:
            start = time.perf_counter()
            job: dict[str, Any] = self._agent.comet_json(*args, "--wait", "--json")
            seconds = time.perf_counter() - start
            peak = peak_rss_of(self._agent.pid)
        finally:
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                profiler.wait(timeout=120)
        if job.get("status") not in OK_STATUSES:
            raise BenchError(f"comet {args[0]} ended {job.get('status')}: {job.get('error')}")
        # Small files are read (backup) or made (restore) by a second process that the
        # job logs with its own peak memory (VmHWM less file pages): added to the
        # agent's, an upper bound of the two together.
        log = self._agent.comet("job", "log", str(job["job_id"]))
        helper = re.search(r"by a second process \(peak RSS (\d+) KiB\)", log)
        extra = int(helper.group(1)) * 1024 if helper else 0
        record = {"command": args[0], "seconds": seconds, "startup_rss_bytes": idle_rss}
        record["helper_peak_rss_bytes"] = extra
        self.jobs.append({**record, "peak_rss_bytes": peak + extra, **job})
        return job, Measurement(seconds=seconds, peak_rss_bytes=peak + extra)

    def _start_profiler(self, label: str) -> subprocess.Popen[bytes] | None:
        """py-spy sampling the agent (all threads, 100 Hz) into collapsed stacks."""
        if self._profile_dir is None:
            return None
        self._profile_dir.mkdir(parents=True, exist_ok=True)
        out = self._profile_dir / f"{label}.txt"
        argv = [str(BIN / "py-spy"), "record", "--pid", str(self._agent.pid), "--rate", "100"]
        argv += ["--threads", "--format", "raw", "--output", str(out)]
        log = (self._profile_dir / "py-spy.log").open("ab")
        profiler = subprocess.Popen(argv, stdout=log, stderr=log)
        time.sleep(0.5)  # let it attach before the job starts
        return profiler

    def close(self) -> None:
        self._agent.stop()
        self._server.stop()
        shutil.rmtree(self._runtime, ignore_errors=True)
