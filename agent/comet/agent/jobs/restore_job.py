"""The work of a restore job: open the vault, pick the target, run the engine."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from comet.agent.jobs.codes import Status
from comet.agent.jobs.runner import FileCounts, JobHandle, JobOutcome
from comet.agent.jobs.targets import TargetSpec, open_target
from comet.agent.reporter import JobWarning
from comet.agent.restore.metered import MeteredStorage
from comet.agent.restore.names import show_path
from comet.agent.restore.run import run_restore
from comet.agent.restore.target import RestorePath
from comet.agent.storage.base import Storage
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
        # The destination is in the log before anything else happens.
        handle.info(f"restoring snapshot {self.snapshot_id} {self.target.describe()}")
        meters: list[MeteredStorage] = []

        def meter(storage: Storage) -> Storage:
            meters.append(MeteredStorage(storage))
            return meters[-1]

        repo = open_repository(
            self.vault,
            self.wrap_key,
            key_dir=self.key_dir,
            server_url=self.server_url,
            wrap=meter,
            cancel=handle.cancel,
        )
        reporter = _Reporter(handle, meters[0])
        try:
            snapshot = repo.load_snapshot(self.snapshot_id)
            if not handle.job.item_id:
                handle.job.item_id = snapshot.item_id
            handle.update(force=True, bytes_total=snapshot.total_bytes, items_total=snapshot.files)
            with open_target(self.target, handle.cancel, on_drop=reporter.dropped) as target:
                result = run_restore(
                    repo,
                    snapshot.id,
                    target,
                    paths=list(self.paths) or None,
                    reporter=reporter,
                    cancel=handle.cancel,
                    hostname=socket.gethostname(),
                    allow_partial=self.allow_partial,
                )
            helped = getattr(target, "writer_files", 0)
            if helped:
                handle.info(
                    f"{helped} small files were made by a second process (peak RSS "
                    f"{getattr(target, 'writer_peak_rss', 0) // 1024} KiB)"
                )
        finally:
            repo.close()
            handle.job.counters.downloaded_bytes = meters[0].bytes_read
        counters = handle.job.counters
        counters.files, counters.directories = result.files, result.dirs
        counters.bytes = result.bytes_written
        handle.update(force=True, bytes_done=result.bytes_written, items_done=result.files)
        handle.info(
            f"restored {result.files} files, {result.dirs} folders, {result.bytes_written} "
            f"bytes; fetched {meters[0].bytes_read} bytes from the vault in "
            f"{meters[0].gets} reads; {result.skipped} skipped"
            + (
                f" ({result.kept} already present and kept, {result.refused} not restorable "
                "here: named in the warnings above)"
                if result.skipped
                else ""
            )
        )
        return JobOutcome(Status.SUCCESS, snapshot_id=snapshot.id.hex())


class _Reporter:
    def __init__(self, handle: JobHandle, meter: MeteredStorage) -> None:
        self._handle = handle
        self._meter = meter
        self._counts = FileCounts(handle)

    def file_started(self, path: str, size: int) -> None:
        self._counts.file(path)

    def bytes_written(self, count: int) -> None:
        self._handle.job.counters.downloaded_bytes = self._meter.bytes_read
        self._counts.add_bytes(count)

    def warning(self, warning: JobWarning) -> None:
        self._handle.warning(str(warning), about_file=warning.about_file)

    def dropped(self, path: RestorePath, message: str) -> None:
        """Privileged metadata the target left out: a warning in the job log."""
        self.warning(JobWarning(show_path(path), message))
