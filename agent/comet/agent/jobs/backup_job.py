"""The work of a backup job: pre-commands, quota check, the engine's backup,
post-commands, all reported on the job."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from comet.agent.backup.options import BackupOptions, FilesSource, ProgramSource
from comet.agent.backup.run import run_backup
from comet.agent.errors import AgentError
from comet.agent.items import ItemSpec, ItemType
from comet.agent.jobs.codes import Status
from comet.agent.jobs.runner import FileCounts, JobHandle, JobOutcome, QuotaExceededError
from comet.agent.process_group import run_command
from comet.agent.reporter import JobWarning
from comet.agent.storage.base import Storage
from comet.agent.vaults import VaultSpec, open_repository


@dataclass(frozen=True)
class BackupJob:
    item: ItemSpec
    vault: VaultSpec
    device_id: str
    wrap_key: bytes
    key_dir: Path
    # The Comet Server hosting "Comet Server" vault buckets (the logged-in server).
    server_url: str = field(default="", kw_only=True)
    bandwidth_bps: int = field(default=0, kw_only=True)
    tags: tuple[str, ...] = field(default=(), kw_only=True)

    def __call__(self, handle: JobHandle) -> JobOutcome:
        handle.info(f"backing up {self.item.name!r} to {self.vault.name!r}")
        for command in self.vault.foreign_commands:
            handle.warning(
                f"not running the vault command {command!r}: it was set by another device "
                "of this account, and a vault's commands run only on the device that set them"
            )
        # The vault's commands wrap the item's: vault pre, item pre, backup, item
        # post, vault post.
        for command in (*self.vault.pre_commands, *self.item.pre_commands):
            run_hook(handle, command, "pre-backup")
        if self.item.type is ItemType.PROGRAM:
            # Shown before it runs, like every command the agent runs for a job.
            handle.info(f"program command: {self.item.program_command}")
        if self.bandwidth_bps:
            handle.info(f"bandwidth limited to {self.bandwidth_bps} bytes/s")
        repo = open_repository(
            self.vault,
            self.wrap_key,
            key_dir=self.key_dir,
            server_url=self.server_url,
            bandwidth_bps=self.bandwidth_bps,
            cancel=handle.cancel,
        )
        try:
            check_quota(self.vault, repo.storage)
            result = run_backup(
                repo,
                self._source(),
                BackupOptions(
                    self.item.item_id,
                    self.device_id,
                    rescan_unchanged=self.item.rescan_unchanged,
                    hostname=socket.gethostname(),
                    tags=self.tags,
                ),
                reporter=_Reporter(handle),
                cancel=handle.cancel,
            )
        finally:
            repo.close()
        counters = handle.job.counters
        counters.files, counters.directories = result.files, result.dirs
        counters.bytes, counters.uploaded_bytes = result.total_bytes, result.uploaded_bytes
        handle.update(force=True, bytes_done=result.bytes_read, items_done=result.files)
        snapshot_id = result.snapshot_id.hex()
        handle.info(
            f"snapshot {snapshot_id[:12]} saved: {result.files} files, {result.dirs} folders, "
            f"{result.total_bytes} bytes; {result.uploaded_bytes} bytes uploaded"
        )
        if result.reader_files:
            handle.info(
                f"{result.reader_files} small files were read by a second process (peak RSS "
                f"{result.reader_peak_rss // 1024} KiB)"
            )
        for command in (*self.item.post_commands, *self.vault.post_commands):
            run_hook(handle, command, "post-backup")
        return JobOutcome(Status.SUCCESS, snapshot_id=snapshot_id)

    def _source(self) -> FilesSource | ProgramSource:
        if self.item.type is ItemType.PROGRAM:
            return ProgramSource(self.item.program_command, self.item.program_save_as)
        return FilesSource(
            includes=list(self.item.includes),
            excludes=list(self.item.exclude_globs),
            exclude_regexes=list(self.item.exclude_regexes),
        )


class _Reporter:
    """Engine progress → job progress and log."""

    def __init__(self, handle: JobHandle) -> None:
        self._handle = handle
        self._counts = FileCounts(handle)

    def expected(self, total_bytes: int, files: int) -> None:
        self._handle.update(force=True, bytes_total=total_bytes, items_total=files)

    def file_started(self, path: str, size: int) -> None:
        self._counts.file(path)

    def file_unchanged(self, path: str, size: int) -> None:
        self._counts.file(path, size)

    def bytes_read(self, count: int) -> None:
        self._counts.add_bytes(count)

    def bytes_uploaded(self, count: int) -> None:
        self._handle.job.counters.uploaded_bytes += count

    def warning(self, warning: JobWarning) -> None:
        self._handle.warning(str(warning), about_file=warning.about_file)


HOOK_TIMEOUT = 3600.0


class HookFailedError(AgentError):
    code = "hook_failed"


def run_hook(handle: JobHandle, command: str, stage: str) -> None:
    """Run a pre/post command with its output in the job log; failure fails the job."""
    handle.info(f"{stage} command: {command}")
    result = run_command(["/bin/sh", "-c", command], handle.cancel, timeout=HOOK_TIMEOUT)
    for line in result.output.splitlines()[-50:]:
        handle.info(f"  {line}")
    if result.returncode != 0:
        raise HookFailedError(f"the {stage} command exited with code {result.returncode}")


def check_quota(vault: VaultSpec, storage: Storage) -> None:
    if not vault.quota_bytes:
        return
    used = sum(info.size for info in storage.list(""))
    if used >= vault.quota_bytes:
        raise QuotaExceededError(
            f"Storage Vault {vault.name!r} uses {used} bytes of its {vault.quota_bytes}-byte "
            "quota; delete snapshots or raise the quota"
        )
