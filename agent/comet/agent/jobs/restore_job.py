"""The work of a restore job: open the vault, pick the target, run the engine."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from comet.agent.jobs.codes import Status
from comet.agent.jobs.runner import JobHandle, JobOutcome
from comet.agent.jobs.targets import TargetSpec, open_target
from comet.agent.reporter import JobWarning
from comet.agent.restore.run import run_restore
from comet.agent.vaults import VaultSpec, open_repository


@dataclass(frozen=True)
class RestoreJob:
    vault: VaultSpec
    snapshot_id: str
    target: TargetSpec
    wrap_key: bytes
    key_dir: Path
    paths: tuple[str, ...] = ()
    allow_partial: bool = False
    # The Comet Server hosting "Comet Server" vault buckets (the logged-in server).
    server_url: str = field(default="", kw_only=True)

    def __call__(self, handle: JobHandle) -> JobOutcome:
        repo = open_repository(
            self.vault,
            self.wrap_key,
            key_dir=self.key_dir,
            server_url=self.server_url,
            cancel=handle.cancel,
        )
        try:
            snapshot = repo.load_snapshot(self.snapshot_id)
            handle.info(f"restoring snapshot {snapshot.id.hex()[:12]} {self.target.describe()}")
            if not handle.job.item_id:
                handle.job.item_id = snapshot.item_id
            handle.update(force=True, bytes_total=snapshot.total_bytes, items_total=snapshot.files)
            with open_target(self.target, handle.cancel) as target:
                result = run_restore(
                    repo,
                    snapshot.id,
                    target,
                    paths=list(self.paths) or None,
                    reporter=_Reporter(handle),
                    cancel=handle.cancel,
                    hostname=socket.gethostname(),
                    allow_partial=self.allow_partial,
                )
        finally:
            repo.close()
        counters = handle.job.counters
        counters.files, counters.directories = result.files, result.dirs
        counters.bytes = result.bytes_written
        handle.update(force=True, bytes_done=result.bytes_written, items_done=result.files)
        handle.info(
            f"restored {result.files} files, {result.dirs} folders, {result.bytes_written} "
            f"bytes; {result.skipped} skipped"
        )
        return JobOutcome(Status.SUCCESS, snapshot_id=snapshot.id.hex())


class _Reporter:
    def __init__(self, handle: JobHandle) -> None:
        self._handle = handle
        self._bytes = 0
        self._files = 0

    def file_started(self, path: str, size: int) -> None:
        self._files += 1
        self._handle.update(items_done=self._files, current_path=path)

    def bytes_written(self, count: int) -> None:
        self._bytes += count
        self._handle.job.counters.downloaded_bytes += count
        self._handle.update(bytes_done=self._bytes)

    def warning(self, warning: JobWarning) -> None:
        self._handle.warning(str(warning))
