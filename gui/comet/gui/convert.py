"""The app's one translation layer between the local API's protobuf messages and
``records``. Only ``agent_client`` imports this module."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from comet.gui import records as r
from comet.v1 import agent_api_pb2, common_pb2


def _time(ts: Timestamp, present: bool) -> datetime | None:
    if not present or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=UTC)


E = TypeVar("E", bound=IntEnum)


def _enum(kind: type[E], value: int, default: E) -> E:
    try:
        return kind(value)
    except ValueError:
        return default


def status_from_proto(msg: agent_api_pb2.StatusReply) -> r.AgentStatus:
    return r.AgentStatus(
        logged_in=msg.logged_in,
        locked=msg.locked,
        server=msg.server,
        username=msg.username,
        device_id=msg.device_id,
        device_name=msg.device_name,
        connected=msg.connected,
        running_jobs=tuple(msg.running_jobs),
        version=msg.version,
        last_error=msg.last_error,
    )


_RANGE_FIELD = {
    r.RetentionKind.KEEP_LAST: "jobs",
    r.RetentionKind.KEEP_WITHIN_DAYS: "days",
    r.RetentionKind.ONE_PER_DAY: "jobs",
    r.RetentionKind.ONE_PER_WEEK: "jobs",
    r.RetentionKind.ONE_PER_MONTH: "jobs",
}


def _simple_range(msg: common_pb2.RetentionRange) -> tuple[r.RetentionKind, int] | None:
    """The range as an editable rule, or None when the app cannot show it faithfully."""
    try:
        kind = r.RetentionKind(msg.type)
    except ValueError:
        return None
    wanted = _RANGE_FIELD[kind]
    others = {"jobs", "days", "weeks", "months", "weekday_offset", "month_offset"} - {wanted}
    if any(getattr(msg, f) for f in others) or msg.HasField("newer_than"):
        return None
    return kind, int(getattr(msg, wanted))


def retention_from_proto(msg: common_pb2.RetentionPolicy) -> r.Retention:
    if msg.mode != common_pb2.RETENTION_MODE_DELETE_EXCEPT:
        return r.Retention()
    rules = [_simple_range(x) for x in msg.ranges]
    if any(rule is None for rule in rules):
        return r.Retention(custom=True)
    return r.Retention(rules=tuple(rule for rule in rules if rule is not None))


def retention_to_proto(retention: r.Retention) -> common_pb2.RetentionPolicy:
    msg = common_pb2.RetentionPolicy()
    if not retention.rules:
        msg.mode = common_pb2.RETENTION_MODE_KEEP_EVERYTHING
        return msg
    msg.mode = common_pb2.RETENTION_MODE_DELETE_EXCEPT
    for kind, count in retention.rules:
        entry = msg.ranges.add()
        entry.type = kind.value  # type: ignore[assignment]
        setattr(entry, _RANGE_FIELD[kind], count)
    return msg


def schedule_from_proto(msg: common_pb2.Schedule) -> r.Schedule | None:
    """None for a frequency code the app does not know: it is kept as is."""
    try:
        frequency = r.Frequency(msg.frequency)
    except ValueError:
        return None
    window = msg.has_window
    return r.Schedule(
        schedule_id=msg.schedule_id,
        item_id=msg.item_id,
        vault_id=msg.vault_id,
        frequency=frequency,
        hour=msg.hour,
        minute=msg.minute,
        weekdays=tuple(msg.weekdays),
        every_seconds=msg.every_seconds,
        skip_if_running=msg.skip_if_running,
        stop_after_seconds=msg.stop_after_seconds,
        enabled=msg.enabled,
        once_at=_time(msg.once_at, msg.HasField("once_at")),
        day_of_month=msg.day_of_month or 1,
        offset_seconds=msg.offset_seconds,
        window_start_minute=msg.window_start_minute if window else None,
        window_end_minute=msg.window_end_minute if window else None,
        random_delay_seconds=msg.random_delay_seconds,
        run_at_boot=msg.run_at_boot,
        run_at_boot_if_missed=msg.run_at_boot_if_missed,
        retry_count=msg.retry_count,
        retry_delay_seconds=msg.retry_delay_seconds,
        bandwidth_limit_bps=msg.bandwidth_limit_bps,
        retention_timing=_enum(r.RetentionTiming, msg.retention_level, r.RetentionTiming.AUTOMATIC),
    )


def schedule_to_proto(
    schedule: r.Schedule, base: common_pb2.Schedule | None = None
) -> common_pb2.Schedule:
    """The schedule as a message; fields the app does not edit (the log level, when it
    was created) are kept from ``base``."""
    msg = common_pb2.Schedule()
    if base is not None:
        msg.CopyFrom(base)
    msg.schedule_id = schedule.schedule_id
    msg.item_id = schedule.item_id
    msg.vault_id = schedule.vault_id
    msg.frequency = schedule.frequency.value  # type: ignore[assignment]
    msg.hour = schedule.hour
    msg.minute = schedule.minute
    del msg.weekdays[:]
    msg.weekdays.extend(schedule.weekdays)
    msg.every_seconds = schedule.every_seconds
    msg.skip_if_running = schedule.skip_if_running
    msg.stop_after_seconds = schedule.stop_after_seconds
    msg.enabled = schedule.enabled
    if schedule.once_at is not None:
        msg.once_at.FromDatetime(schedule.once_at.astimezone(UTC))
    else:
        msg.ClearField("once_at")
    msg.day_of_month = schedule.day_of_month
    msg.offset_seconds = schedule.offset_seconds
    msg.has_window = schedule.window_start_minute is not None
    msg.window_start_minute = schedule.window_start_minute or 0
    msg.window_end_minute = schedule.window_end_minute or 0
    msg.random_delay_seconds = schedule.random_delay_seconds
    msg.run_at_boot = schedule.run_at_boot
    msg.run_at_boot_if_missed = schedule.run_at_boot_if_missed
    msg.retry_count = schedule.retry_count
    msg.retry_delay_seconds = schedule.retry_delay_seconds
    msg.bandwidth_limit_bps = schedule.bandwidth_limit_bps
    msg.retention_level = schedule.retention_timing.value
    return msg


def settings_from_proto(msg: common_pb2.AccountSettings) -> r.AccountSettings:
    return r.AccountSettings(
        account_name=msg.account_name,
        emails=tuple(msg.emails),
        language=msg.language,
        timezone=msg.timezone,
        allow_admin_view_files=msg.allow_admin_view_files,
        allow_admin_reset_password=msg.allow_admin_reset_password,
    )


def settings_to_proto(settings: r.AccountSettings) -> common_pb2.AccountSettings:
    return common_pb2.AccountSettings(
        account_name=settings.account_name,
        emails=list(settings.emails),
        language=settings.language,
        timezone=settings.timezone,
        allow_admin_view_files=settings.allow_admin_view_files,
        allow_admin_reset_password=settings.allow_admin_reset_password,
    )


def policy_from_proto(msg: common_pb2.Policy) -> r.PolicyFlags:
    f = msg.flags
    return r.PolicyFlags(
        policy_name=msg.name,
        prevent_new_item=f.prevent_new_item,
        prevent_edit_item=f.prevent_edit_item,
        prevent_delete_item=f.prevent_delete_item,
        prevent_edit_vault=f.prevent_edit_vault,
        prevent_delete_vault=f.prevent_delete_vault,
        prevent_delete_snapshot=f.prevent_delete_snapshot,
        prevent_change_password=f.prevent_change_password,
        prevent_change_email=f.prevent_change_email,
        require_password_to_open_app=f.require_password_to_open_app,
        hide_import=f.hide_import,
        hide_version=f.hide_version,
    )


def item_from_proto(msg: common_pb2.ProtectedItem) -> r.ProtectedItem:
    return r.ProtectedItem(
        item_id=msg.item_id,
        name=msg.name,
        type=r.ItemType.PROGRAM if msg.type == common_pb2.ITEM_TYPE_PROGRAM else r.ItemType.FILES,
        owner_device_id=msg.owner_device_id,
        includes=tuple(msg.includes),
        exclude_globs=tuple(msg.exclude_globs),
        exclude_regexes=tuple(msg.exclude_regexes),
        program_command=msg.program_command,
        program_save_as=msg.program_save_as,
        retention_overrides=tuple(
            (v, retention_from_proto(msg.retention_overrides[v]))
            for v in sorted(msg.retention_overrides)
        ),
    )


def item_to_proto(
    item: r.ProtectedItem, base: common_pb2.ProtectedItem | None = None
) -> common_pb2.ProtectedItem:
    """The item as a message; fields the app does not edit are kept from ``base``."""
    msg = common_pb2.ProtectedItem()
    if base is not None:
        msg.CopyFrom(base)
    msg.item_id = item.item_id
    msg.name = item.name
    msg.type = (
        common_pb2.ITEM_TYPE_PROGRAM
        if item.type is r.ItemType.PROGRAM
        else common_pb2.ITEM_TYPE_FILES
    )
    del msg.includes[:]
    msg.includes.extend(item.includes)
    del msg.exclude_globs[:]
    msg.exclude_globs.extend(item.exclude_globs)
    del msg.exclude_regexes[:]
    msg.exclude_regexes.extend(item.exclude_regexes)
    msg.program_command = item.program_command
    msg.program_save_as = item.program_save_as
    edited = {v: p for v, p in item.retention_overrides if not p.custom}
    kept = {v for v, p in item.retention_overrides if p.custom}
    for vault_id in list(msg.retention_overrides):
        if vault_id not in kept:
            del msg.retention_overrides[vault_id]
    for vault_id, policy in edited.items():
        msg.retention_overrides[vault_id].CopyFrom(retention_to_proto(policy))
    return msg


def vault_from_proto(msg: common_pb2.StorageVault) -> r.StorageVault:
    which = msg.WhichOneof("settings")
    settings: r.VaultSettings = None
    if which == "local":
        settings = r.LocalVaultSettings(path=msg.local.path)
    elif which == "s3":
        s3 = msg.s3
        settings = r.S3VaultSettings(
            s3.endpoint, s3.bucket, s3.prefix, s3.access_key, "", s3.region
        )
    elif which == "sftp":
        sf = msg.sftp
        settings = r.SftpVaultSettings(sf.host, sf.port, sf.username, sf.path, host_key=sf.host_key)
    return r.StorageVault(
        vault_id=msg.vault_id,
        name=msg.name,
        type=_enum(r.VaultType, msg.type, r.VaultType.UNSPECIFIED),
        settings=settings,
        quota_bytes=msg.quota_bytes,
        default_retention=retention_from_proto(msg.default_retention),
        immutable_days=msg.immutable_days,
        object_lock_compliance=msg.object_lock_mode == common_pb2.OBJECT_LOCK_MODE_COMPLIANCE,
    )


def vault_to_proto(vault: r.StorageVault) -> common_pb2.StorageVault:
    msg = common_pb2.StorageVault(vault_id=vault.vault_id, name=vault.name)
    msg.type = vault.type.value  # type: ignore[assignment]
    msg.quota_bytes = vault.quota_bytes
    msg.immutable_days = vault.immutable_days
    if vault.immutable_days:
        msg.object_lock_mode = (
            common_pb2.OBJECT_LOCK_MODE_COMPLIANCE
            if vault.object_lock_compliance
            else common_pb2.OBJECT_LOCK_MODE_GOVERNANCE
        )
    if not vault.default_retention.custom:
        msg.default_retention.CopyFrom(retention_to_proto(vault.default_retention))
    s = vault.settings
    if isinstance(s, r.LocalVaultSettings):
        msg.local.path = s.path
    elif isinstance(s, r.S3VaultSettings):
        msg.s3.CopyFrom(
            common_pb2.S3VaultSettings(
                endpoint=s.endpoint,
                bucket=s.bucket,
                prefix=s.prefix,
                access_key=s.access_key,
                secret_key=s.secret_key,
                region=s.region,
            )
        )
    elif isinstance(s, r.SftpVaultSettings):
        msg.sftp.CopyFrom(
            common_pb2.SftpVaultSettings(
                host=s.host,
                port=s.port,
                username=s.username,
                path=s.path,
                password=s.password,
                private_key=s.private_key,
                host_key=s.host_key,
            )
        )
    return msg


def profile_from_proto(msg: common_pb2.Profile) -> r.Profile:
    schedules = (schedule_from_proto(s) for s in msg.schedules)
    return r.Profile(
        username=msg.username,
        version=msg.version,
        items=tuple(item_from_proto(i) for i in msg.items),
        vaults=tuple(vault_from_proto(v) for v in msg.vaults),
        schedules=tuple(s for s in schedules if s is not None),
        settings=settings_from_proto(msg.settings),
        policy=policy_from_proto(msg.policy),
        recovery_enabled=msg.recovery_enabled,
    )


def device_from_proto(msg: common_pb2.DeviceInfo) -> r.Device:
    return r.Device(
        device_id=msg.device_id,
        name=msg.name,
        os=msg.os,
        arch=msg.arch,
        client_version=msg.client_version,
        registered_at=_time(msg.registered_at, msg.HasField("registered_at")),
        online=msg.online,
        revoked=msg.revoked,
    )


def job_from_proto(msg: common_pb2.Job) -> r.Job:
    p = msg.progress
    c = msg.counters
    return r.Job(
        job_id=msg.job_id,
        classification=_enum(r.Classification, msg.classification, r.Classification.UNKNOWN),
        status=_enum(r.JobStatus, msg.status, r.JobStatus.UNKNOWN),
        device_id=msg.device_id,
        item_id=msg.item_id,
        vault_id=msg.vault_id,
        started_at=_time(msg.started_at, msg.HasField("started_at")),
        ended_at=_time(msg.ended_at, msg.HasField("ended_at")),
        files=c.files,
        directories=c.directories,
        bytes=c.bytes,
        uploaded_bytes=c.uploaded_bytes,
        downloaded_bytes=c.downloaded_bytes,
        progress=r.JobProgress(
            bytes_done=p.bytes_done,
            items_done=p.items_done,
            bytes_total=p.bytes_total,
            items_total=p.items_total,
            current_path=p.current_path,
        ),
        snapshot_id=msg.snapshot_id,
        error_message=msg.error_message,
    )


def log_from_proto(msg: common_pb2.LogEntry) -> r.LogEntry:
    return r.LogEntry(
        time=_time(msg.time, msg.HasField("time")),
        severity=_enum(r.Severity, msg.severity, r.Severity.INFO),
        message=msg.message,
    )


def event_from_proto(msg: agent_api_pb2.JobEvent) -> r.JobEvent:
    return r.JobEvent(
        job=job_from_proto(msg.job),
        log=tuple(log_from_proto(e) for e in msg.log),
        ended=msg.ended,
    )


def job_log_from_proto(msg: agent_api_pb2.JobLogReply) -> r.JobLog:
    return r.JobLog(
        job=job_from_proto(msg.job), entries=tuple(log_from_proto(e) for e in msg.entries)
    )


def snapshot_from_proto(msg: common_pb2.SnapshotSummary) -> r.Snapshot:
    return r.Snapshot(
        snapshot_id=msg.snapshot_id,
        item_id=msg.item_id,
        device_id=msg.device_id,
        time=_time(msg.time, msg.HasField("time")),
        files=msg.files,
        bytes=msg.bytes,
        paths=tuple(msg.paths),
        has_original_paths=msg.has_original_paths,
        item_name=msg.item_name,
        unknown_item=msg.unknown_item,
    )


def entry_from_proto(msg: common_pb2.SnapshotEntry) -> r.SnapshotEntry:
    return r.SnapshotEntry(
        path=msg.path,
        is_dir=msg.type == common_pb2.NODE_TYPE_DIRECTORY,
        size=msg.size,
        mtime=_time(msg.mtime, msg.HasField("mtime")),
    )


def _timestamp(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when.astimezone(UTC))
    return ts


def find_query_to_proto(query: r.FindQuery) -> common_pb2.FindQuery:
    msg = common_pb2.FindQuery(
        name_glob=query.name_glob,
        min_size=query.min_size,
        max_size=query.max_size,
        limit=query.limit,
    )
    if query.modified_after is not None:
        msg.modified_after.CopyFrom(_timestamp(query.modified_after))
    if query.modified_before is not None:
        msg.modified_before.CopyFrom(_timestamp(query.modified_before))
    return msg


def search_from_proto(msg: agent_api_pb2.FindReply) -> r.SearchResult:
    return r.SearchResult(
        found=tuple(r.FoundEntry(e.snapshot_id, entry_from_proto(e)) for e in msg.entries),
        truncated=msg.truncated,
    )


def import_source_from_proto(msg: agent_api_pb2.ImportSource) -> r.ImportSource:
    return r.ImportSource(msg.source_id, msg.product, msg.path, msg.description)


def restore_to_proto(spec: r.RestoreSpec) -> agent_api_pb2.StartRestoreRequest:
    options = common_pb2.RestoreOptions(
        destination=spec.destination,
        original_paths=spec.original_paths,
        paths=list(spec.paths),
        program_command=spec.program_command,
    )
    options.type = spec.type.value  # type: ignore[assignment]
    options.archive_format = spec.archive_format.value  # type: ignore[assignment]
    options.overwrite = (
        common_pb2.OVERWRITE_MODE_OVERWRITE
        if spec.overwrite
        else common_pb2.OVERWRITE_MODE_SKIP_EXISTING
    )
    return agent_api_pb2.StartRestoreRequest(
        vault_id=spec.vault_id,
        snapshot_id=spec.snapshot_id,
        item_id=spec.item_id,
        options=options,
    )
