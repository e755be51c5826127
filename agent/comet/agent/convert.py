"""Conversions between protobuf messages (local API, server wire) and the agent's
domain types. Protobuf goes no deeper than the agent's rpc edges and this module."""

from __future__ import annotations

from datetime import UTC

from google.protobuf.timestamp_pb2 import Timestamp

from comet.agent.browse import Entry, EntryColumns, FindQuery
from comet.agent.items import ItemSpec, ItemType
from comet.agent.jobs.codes import Classification, Severity, Status
from comet.agent.jobs.record import JobRecord, LogEntry
from comet.agent.jobs.targets import ArchiveFormat, RestoreType, TargetSpec
from comet.agent.maintenance.retention import (
    RangeType,
    RetentionMode,
    RetentionPolicy,
    RetentionRange,
    RetentionRules,
)
from comet.agent.mount.options import MountRequest
from comet.agent.printable import printable
from comet.agent.repository.tree import NodeType
from comet.agent.restore.directory import Overwrite
from comet.agent.scheduler import Frequency, ScheduleError, ScheduleSpec
from comet.agent.snapshot_info import SnapshotInfo
from comet.agent.storage.object_lock import COMPLIANCE, GOVERNANCE, protection_seconds
from comet.agent.vaults import (
    CometSettings,
    LocalSettings,
    S3Settings,
    SftpSettings,
    VaultSettings,
    VaultSpec,
    VaultType,
)
from comet.v1 import agent_api_pb2, common_pb2


def timestamp_ns(ns: int) -> Timestamp:
    ts = Timestamp()
    if ns:
        ts.FromNanoseconds(ns)
    return ts


def vault_from_proto(msg: common_pb2.StorageVault, *, device_id: str = "") -> VaultSpec:
    """With ``device_id``, the vault's pre/post commands are those that device set:
    a vault is shared by the account's devices, its commands are not."""
    which = msg.WhichOneof("settings")
    settings: VaultSettings
    if which == "local":
        settings = LocalSettings(msg.local.path)
    elif which == "s3":
        s = msg.s3
        settings = S3Settings(
            s.endpoint, s.bucket, s.prefix, s.access_key, s.secret_key, s.region or "us-east-1"
        )
    elif which == "sftp":
        t = msg.sftp
        settings = SftpSettings(
            t.host, t.port, t.username, t.path, t.password, t.private_key, t.host_key
        )
    elif which == "comet":
        settings = CometSettings(msg.comet.bucket_id, msg.comet.bucket_key)
    else:
        settings = LocalSettings("")
    return VaultSpec(
        vault_id=msg.vault_id,
        name=msg.name,
        type=VaultType(msg.type) if msg.type in VaultType._value2member_map_ else VaultType.LOCAL,
        settings=settings,
        wrapped_vault_key=msg.wrapped_vault_key,
        quota_bytes=msg.quota_bytes,
        pre_commands=tuple(c.command for c in msg.pre_commands if _runs_here(c, device_id)),
        post_commands=tuple(c.command for c in msg.post_commands if _runs_here(c, device_id)),
        foreign_commands=tuple(
            c.command
            for c in (*msg.pre_commands, *msg.post_commands)
            if not _runs_here(c, device_id)
        ),
        immutable_seconds=protection_seconds(msg.immutable_days, msg.immutable_seconds),
        object_lock_mode=(
            COMPLIANCE
            if msg.object_lock_mode == common_pb2.OBJECT_LOCK_MODE_COMPLIANCE
            else GOVERNANCE
        ),
    )


def _runs_here(command: common_pb2.ProgramCommand, device_id: str) -> bool:
    return not device_id or command.owner_device_id == device_id


def vault_settings_to_proto(settings: VaultSettings, msg: common_pb2.StorageVault) -> None:
    if isinstance(settings, LocalSettings):
        msg.local.path = settings.path
    elif isinstance(settings, S3Settings):
        msg.s3.CopyFrom(
            common_pb2.S3VaultSettings(
                endpoint=settings.endpoint,
                bucket=settings.bucket,
                prefix=settings.prefix,
                access_key=settings.access_key,
                secret_key=settings.secret_key,
                region=settings.region,
            )
        )
    elif isinstance(settings, SftpSettings):
        msg.sftp.CopyFrom(
            common_pb2.SftpVaultSettings(
                host=settings.host,
                port=settings.port,
                username=settings.username,
                path=settings.path,
                password=settings.password,
                private_key=settings.private_key,
                host_key=settings.host_key,
            )
        )
    else:
        msg.comet.CopyFrom(
            common_pb2.CometVaultSettings(
                bucket_id=settings.bucket_id, bucket_key=settings.bucket_key
            )
        )


def item_from_proto(msg: common_pb2.ProtectedItem) -> ItemSpec:
    return ItemSpec(
        item_id=msg.item_id,
        name=msg.name,
        type=ItemType.PROGRAM if msg.type == common_pb2.ITEM_TYPE_PROGRAM else ItemType.FILES,
        owner_device_id=msg.owner_device_id,
        includes=tuple(msg.includes),
        exclude_globs=tuple(msg.exclude_globs),
        exclude_regexes=tuple(msg.exclude_regexes),
        rescan_unchanged=msg.rescan_unchanged,
        program_command=msg.program_command,
        program_save_as=msg.program_save_as,
        pre_commands=tuple(c.command for c in msg.pre_commands),
        post_commands=tuple(c.command for c in msg.post_commands),
    )


def job_to_proto(job: JobRecord) -> common_pb2.Job:
    c, p = job.counters, job.progress
    return common_pb2.Job(
        job_id=job.job_id,
        username=job.username,
        device_id=job.device_id,
        item_id=job.item_id,
        vault_id=job.vault_id,
        classification=int(job.classification),  # type: ignore[arg-type]
        status=int(job.status),  # type: ignore[arg-type]
        started_at=timestamp_ns(job.started_ns),
        ended_at=timestamp_ns(job.ended_ns),
        counters=common_pb2.JobCounters(
            files=c.files,
            directories=c.directories,
            bytes=c.bytes,
            uploaded_bytes=c.uploaded_bytes,
            downloaded_bytes=c.downloaded_bytes,
        ),
        progress=common_pb2.JobProgress(
            counter=p.counter,
            bytes_done=p.bytes_done,
            items_done=p.items_done,
            bytes_total=p.bytes_total,
            items_total=p.items_total,
            current_path=p.current_path,
        ),
        snapshot_id=job.snapshot_id,
        client_version=job.client_version,
        error_message=job.error,
    )


def job_from_proto(msg: common_pb2.Job) -> JobRecord:
    from comet.agent.jobs.record import JobCounters, JobProgress

    c, p = msg.counters, msg.progress
    return JobRecord(
        job_id=msg.job_id,
        classification=Classification(msg.classification)
        if msg.classification in Classification._value2member_map_
        else Classification.UNKNOWN,
        status=Status(msg.status) if msg.status in Status._value2member_map_ else Status.ERROR,
        device_id=msg.device_id,
        username=msg.username,
        item_id=msg.item_id,
        vault_id=msg.vault_id,
        started_ns=msg.started_at.ToNanoseconds(),
        ended_ns=msg.ended_at.ToNanoseconds(),
        snapshot_id=msg.snapshot_id,
        error=msg.error_message,
        client_version=msg.client_version,
        counters=JobCounters(c.files, c.directories, c.bytes, c.uploaded_bytes, c.downloaded_bytes),
        progress=JobProgress(
            p.counter, p.bytes_done, p.items_done, p.bytes_total, p.items_total, p.current_path
        ),
    )


def log_to_proto(entry: LogEntry) -> common_pb2.LogEntry:
    return common_pb2.LogEntry(
        time=timestamp_ns(entry.time_ns),
        severity=int(entry.severity),  # type: ignore[arg-type]
        message=entry.message,
        seq=entry.seq,
    )


def log_from_proto(msg: common_pb2.LogEntry) -> LogEntry:
    severity = Severity(msg.severity) if msg.severity in (1, 2, 3, 4) else Severity.INFO
    return LogEntry(msg.seq, msg.time.ToNanoseconds(), severity, msg.message)


def target_from_proto(msg: common_pb2.RestoreOptions) -> TargetSpec:
    overwrite = {
        common_pb2.OVERWRITE_MODE_OVERWRITE: Overwrite.OVERWRITE,
        common_pb2.OVERWRITE_MODE_IF_NEWER: Overwrite.IF_NEWER,
    }.get(msg.overwrite, Overwrite.SKIP)
    restore_type = (
        RestoreType(msg.type) if msg.type in RestoreType._value2member_map_ else RestoreType.FILES
    )
    archive = (
        ArchiveFormat(msg.archive_format)
        if msg.archive_format in ArchiveFormat._value2member_map_
        else ArchiveFormat.TAR
    )
    return TargetSpec(
        type=restore_type,
        destination=msg.destination,
        original_paths=msg.original_paths,
        overwrite=overwrite,
        program_command=msg.program_command,
        archive_format=archive,
        restore_privileged=msg.restore_privileged,
    )


def snapshot_to_proto(info: SnapshotInfo) -> common_pb2.SnapshotSummary:
    return common_pb2.SnapshotSummary(
        snapshot_id=info.snapshot_id,
        item_id=info.item_id,
        device_id=info.device_id,
        time=timestamp_ns(info.start_ns),
        ended_at=timestamp_ns(info.end_ns),
        files=info.files,
        directories=info.dirs,
        bytes=info.bytes,
        paths=[printable(p) for p in info.paths],
        has_original_paths=bool(info.paths),
        item_name=info.item_name,
        unknown_item=info.unknown_item,
        tags=list(info.tags),
    )


def retention_from_proto(msg: common_pb2.RetentionPolicy) -> RetentionPolicy:
    if msg.mode != common_pb2.RETENTION_MODE_DELETE_EXCEPT:
        return RetentionPolicy()
    ranges = []
    for r in msg.ranges:
        if r.type not in RangeType._value2member_map_:
            continue
        ranges.append(
            RetentionRange(
                RangeType(r.type),
                jobs=r.jobs,
                newer_than_ns=r.newer_than.ToNanoseconds(),
                days=r.days,
                weeks=r.weeks,
                months=r.months,
                weekday_offset=r.weekday_offset,
                month_offset=r.month_offset or 1,
            )
        )
    return RetentionPolicy(RetentionMode.DELETE_EXCEPT, tuple(ranges))


def retention_rules(profile: common_pb2.Profile, vault_id: str) -> RetentionRules:
    """The vault default (or the policy's enforced one), with each item's override."""
    vault = next((v for v in profile.vaults if v.vault_id == vault_id), None)
    default = retention_from_proto(vault.default_retention) if vault else RetentionPolicy()
    if profile.policy.enforce_retention:
        enforced = retention_from_proto(profile.policy.default_retention)
        return RetentionRules(vault_default=enforced, known_items=frozenset())
    overrides = {
        item.item_id: retention_from_proto(item.retention_overrides[vault_id])
        for item in profile.items
        if vault_id in item.retention_overrides
    }
    return RetentionRules(
        vault_default=default,
        item_overrides=overrides,
        known_items=frozenset(item.item_id for item in profile.items),
    )


def schedule_from_proto(msg: common_pb2.Schedule) -> ScheduleSpec | None:
    """The schedule as the scheduler takes it; None for one it cannot run."""
    if msg.frequency not in Frequency._value2member_map_:
        return None
    try:
        return ScheduleSpec(
            schedule_id=msg.schedule_id,
            item_id=msg.item_id,
            vault_id=msg.vault_id,
            frequency=Frequency(msg.frequency),
            once_at=msg.once_at.ToDatetime(tzinfo=UTC) if msg.HasField("once_at") else None,
            hour=msg.hour,
            minute=msg.minute,
            weekdays=frozenset(msg.weekdays),
            day_of_month=msg.day_of_month or 1,
            every_seconds=msg.every_seconds,
            offset_seconds=msg.offset_seconds,
            window_start_minute=msg.window_start_minute if msg.has_window else None,
            window_end_minute=msg.window_end_minute if msg.has_window else None,
            random_delay_seconds=msg.random_delay_seconds,
            run_at_boot=msg.run_at_boot,
            run_at_boot_if_missed=msg.run_at_boot_if_missed,
            skip_if_running=msg.skip_if_running,
            stop_after_seconds=msg.stop_after_seconds,
            retry_count=msg.retry_count,
            retry_delay_seconds=msg.retry_delay_seconds,
            enabled=msg.enabled,
        )
    except ScheduleError:
        return None


_NODE_TYPES = {
    "file": common_pb2.NODE_TYPE_FILE,
    "dir": common_pb2.NODE_TYPE_DIRECTORY,
    "symlink": common_pb2.NODE_TYPE_SYMLINK,
    "fifo": common_pb2.NODE_TYPE_FIFO,
    "chardev": common_pb2.NODE_TYPE_CHAR_DEVICE,
    "blockdev": common_pb2.NODE_TYPE_BLOCK_DEVICE,
    "socket": common_pb2.NODE_TYPE_SOCKET,
}


def node_type_to_proto(node_type: NodeType | None) -> common_pb2.NodeType.ValueType:
    if node_type is None:
        return common_pb2.NODE_TYPE_UNSPECIFIED
    return _NODE_TYPES.get(str(node_type), common_pb2.NODE_TYPE_UNSPECIFIED)


def entry_to_proto(entry: Entry) -> common_pb2.SnapshotEntry:
    # The time as a dict (protobuf fills a message field from one; the stubs do not
    # say so): building a Timestamp first and copying it in took half the time of a
    # recursive listing's conversion (one call per file).
    seconds, nanos = divmod(entry.mtime_ns, 1_000_000_000)
    return common_pb2.SnapshotEntry(
        path=printable(entry.path),
        type=node_type_to_proto(entry.type),
        size=entry.size,
        mode=entry.mode,
        mtime={"seconds": seconds, "nanos": nanos},  # type: ignore[arg-type]
        link_target=printable(entry.link_target or ""),
        snapshot_id=entry.snapshot_id,
    )


def columns_to_proto(columns: EntryColumns) -> common_pb2.SnapshotEntryColumns:
    """A batch of a recursive listing, a list per field (each set with one call)."""
    mtimes = columns.mtimes_ns
    return common_pb2.SnapshotEntryColumns(
        snapshot_id=columns.snapshot_id,
        path=[p if p.isascii() else printable(p) for p in columns.paths],
        type=[_NODE_TYPES[t] for t in columns.types],
        size=columns.sizes,
        mode=columns.modes,
        mtime_seconds=[ns // 1_000_000_000 for ns in mtimes],
        mtime_nanos=[ns % 1_000_000_000 for ns in mtimes],
        link_target=[printable(t) if t else "" for t in columns.link_targets],
    )


def find_query_from_proto(msg: common_pb2.FindQuery) -> FindQuery:
    return FindQuery(
        name_glob=msg.name_glob or None,
        name_regex=msg.name_regex or None,
        path_glob=msg.path_glob or None,
        min_size=msg.min_size if msg.min_size or msg.has_min_size else None,
        max_size=msg.max_size if msg.max_size or msg.has_max_size else None,
        modified_after=msg.modified_after.ToNanoseconds()
        if msg.HasField("modified_after")
        else None,
        modified_before=msg.modified_before.ToNanoseconds()
        if msg.HasField("modified_before")
        else None,
        limit=msg.limit or None,
    )


def item_to_proto(item: ItemSpec) -> common_pb2.ProtectedItem:
    msg = common_pb2.ProtectedItem(
        item_id=item.item_id,
        owner_device_id=item.owner_device_id,
        name=item.name,
        type=common_pb2.ITEM_TYPE_PROGRAM
        if item.type is ItemType.PROGRAM
        else common_pb2.ITEM_TYPE_FILES,
        includes=list(item.includes),
        exclude_globs=list(item.exclude_globs),
        exclude_regexes=list(item.exclude_regexes),
        rescan_unchanged=item.rescan_unchanged,
        program_command=item.program_command,
        program_save_as=item.program_save_as,
    )
    msg.pre_commands.extend(common_pb2.ProgramCommand(command=c) for c in item.pre_commands)
    msg.post_commands.extend(common_pb2.ProgramCommand(command=c) for c in item.post_commands)
    return msg


def schedule_to_proto(spec: ScheduleSpec) -> common_pb2.Schedule:
    return common_pb2.Schedule(
        schedule_id=spec.schedule_id,
        item_id=spec.item_id,
        vault_id=spec.vault_id,
        frequency=int(spec.frequency),  # type: ignore[arg-type]
        hour=spec.hour,
        minute=spec.minute,
        weekdays=sorted(spec.weekdays),
        day_of_month=spec.day_of_month,
        every_seconds=spec.every_seconds,
        offset_seconds=spec.offset_seconds,
        random_delay_seconds=spec.random_delay_seconds,
        skip_if_running=spec.skip_if_running,
        stop_after_seconds=spec.stop_after_seconds,
        retry_count=spec.retry_count,
        retry_delay_seconds=spec.retry_delay_seconds,
        enabled=spec.enabled,
    )


def retention_to_proto(policy: RetentionPolicy) -> common_pb2.RetentionPolicy:
    msg = common_pb2.RetentionPolicy(mode=int(policy.mode))  # type: ignore[arg-type]
    for r in policy.ranges:
        proto_range = common_pb2.RetentionRange(
            type=int(r.type),  # type: ignore[arg-type]
            jobs=r.jobs,
            days=r.days,
            weeks=r.weeks,
            months=r.months,
            weekday_offset=r.weekday_offset,
            month_offset=r.month_offset,
        )
        if r.newer_than_ns:
            proto_range.newer_than.FromNanoseconds(r.newer_than_ns)
        msg.ranges.append(proto_range)
    return msg


def mount_request_from_proto(msg: agent_api_pb2.MountRequest) -> MountRequest:
    return MountRequest(
        vault=msg.vault_id,
        mountpoint=msg.mountpoint,
        item=msg.item_id,
        snapshot=msg.snapshot_id,
        all_devices=msg.all_devices,
        cache_bytes=max(msg.cache_bytes, 0),
    )
