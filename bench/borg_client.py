"""``BorgClient``: borg 1.2 through its command line. Imports nothing from Comet."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench.measure import BenchError, Measurement, run_measured, run_quiet
from bench.tool import Case

PASSPHRASE = "bench-borg-passphrase"


class BorgClient:
    """borg with ``-e repokey`` and ``--compression zstd,3``; its cache, config and
    security dirs live in the case's home dir (``BORG_BASE_DIR``)."""

    name = "borg"

    def __init__(self) -> None:
        binary = shutil.which("borg")
        if binary is None:
            raise BenchError("borg is not installed (deploy/bootstrap --dev installs it)")
        self._binary = binary
        self._archives = 0

    def _env(self, case: Case) -> dict[str, str]:
        return {
            **os.environ,
            "BORG_PASSPHRASE": PASSPHRASE,
            "BORG_REPO": str(case.repo_dir),
            "BORG_BASE_DIR": str(case.home_dir / "borg"),
        }

    def version(self) -> str:
        return run_quiet([self._binary, "--version"], log=Path(os.devnull)).split()[-1]

    def settings(self) -> str:
        return "-e repokey (AES-256-CTR + HMAC-SHA256), --compression zstd,3, extract --sparse"

    def init(self, case: Case) -> None:
        self._archives = 0
        run_quiet([self._binary, "init", "-e", "repokey"], env=self._env(case), log=case.log)

    def backup(self, case: Case) -> Measurement:
        self._archives += 1
        argv = [
            self._binary,
            "create",
            "--compression",
            "zstd,3",
            f"::run{case.run}-{self._archives}",
            str(case.corpus.root),
        ]
        return run_measured(argv, env=self._env(case), log=case.log)

    def restore(self, case: Case, dest: Path) -> Measurement:
        # borg extracts into the current directory, paths without the leading "/".
        argv = [self._binary, "extract", "--sparse", f"::run{case.run}-{self._archives}"]
        return run_measured(argv, env=self._env(case), log=case.log, cwd=dest)

    def find(self, case: Case, pattern: str) -> Measurement:
        """``borg list ARCHIVE --pattern``: every item is read, matching names printed."""
        archive = f"::run{case.run}-{self._archives}"
        argv = [self._binary, "list", archive, "--pattern", f"+ fm:*/{pattern}"]
        argv += ["--pattern", "- *"]
        return run_measured(argv, env=self._env(case), log=case.log, discard_stdout=True)

    def list_all(self, case: Case) -> Measurement:
        """``borg list ARCHIVE``: every entry of the latest archive."""
        argv = [self._binary, "list", f"::run{case.run}-{self._archives}"]
        return run_measured(argv, env=self._env(case), log=case.log, discard_stdout=True)

    def close(self) -> None:
        pass
