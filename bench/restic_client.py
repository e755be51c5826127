"""``ResticClient``: restic 0.14 through its command line. Imports nothing from Comet."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.measure import BenchError, Measurement, run_measured, run_quiet
from bench.mount_rows import mount_dir, wait_for_path
from bench.tool import Case

PASSWORD = "bench-restic-password"


class ResticClient:
    """restic with a local repository, its cache inside the case's home dir. restic
    0.14 creates repository format v2 and compresses with ``--compression auto``."""

    name = "restic"

    def __init__(self) -> None:
        binary = shutil.which("restic")
        if binary is None:
            raise BenchError("restic is not installed (deploy/bootstrap --dev installs it)")
        self._binary = binary
        self._repo_version = "?"

    def _env(self, case: Case) -> dict[str, str]:
        return {
            **os.environ,
            "RESTIC_PASSWORD": PASSWORD,
            "RESTIC_REPOSITORY": str(case.repo_dir),
            "RESTIC_CACHE_DIR": str(case.home_dir / "cache"),
        }

    def version(self) -> str:
        out = run_quiet([self._binary, "version"], log=Path(os.devnull))
        return out.split()[1] if out.startswith("restic ") else out.strip()

    def settings(self) -> str:
        return (
            f"AES-256-CTR + Poly1305, repository v{self._repo_version}, "
            "--compression auto (zstd default speed), restore writes zeros (no --sparse in 0.14)"
        )

    def init(self, case: Case) -> None:
        env = self._env(case)
        run_quiet([self._binary, "init"], env=env, log=case.log)
        config = json.loads(run_quiet([self._binary, "cat", "config"], env=env, log=case.log))
        self._repo_version = str(config.get("version", "?"))

    def backup(self, case: Case) -> Measurement:
        argv = [self._binary, "backup", "--compression", "auto", "-q", str(case.corpus.root)]
        return run_measured(argv, env=self._env(case), log=case.log)

    def restore(self, case: Case, dest: Path) -> Measurement:
        argv = [self._binary, "restore", "latest", "--target", str(dest)]
        return run_measured(argv, env=self._env(case), log=case.log)

    def find(self, case: Case, pattern: str) -> Measurement:
        """``restic find PATTERN`` in the latest snapshot (a walk of every tree)."""
        argv = [self._binary, "find", "--snapshot", "latest", pattern]
        return run_measured(argv, env=self._env(case), log=case.log)

    def list_all(self, case: Case) -> Measurement:
        """``restic ls latest``: every entry of the snapshot (recursive by default)."""
        argv = [self._binary, "ls", "latest"]
        return run_measured(argv, env=self._env(case), log=case.log, discard_stdout=True)

    @contextmanager
    def mount(self, case: Case) -> Iterator[Path]:
        """``restic mount``; the corpus is under ``snapshots/latest/<absolute path>``."""
        with mount_dir() as mnt, case.log.open("a") as log:
            argv = [self._binary, "mount", str(mnt)]
            proc = subprocess.Popen(argv, env=self._env(case), stdout=log, stderr=log)
            try:
                latest = mnt / "snapshots" / "latest"
                wait_for_path(latest, "restic mount")
                yield latest / case.corpus.root.relative_to("/")
            finally:
                proc.send_signal(signal.SIGINT)  # restic unmounts on Ctrl-C
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)

    def close(self) -> None:
        pass
