"""Conversions between protobuf messages and the server's domain types."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from comet.agent.credentials import (
    FLOOR_LOG2_N,
    FLOOR_R,
    KdfParams,
    KdfPolicyError,
    require_kdf_floor,
)
from comet.server.errors import InvalidRequestError
from comet.server.store.accounts import DeviceRecord, Registration, UserRecord
from comet.server.store.jobs import (
    JobClassification,
    JobCounters,
    JobPage,
    JobProgress,
    JobQuery,
    JobRecord,
    JobStatus,
    LogLine,
    Severity,
)
from comet.server.store.policies import PolicyRecord
from comet.server.store.profiles import ProfileView
from comet.v1 import admin_pb2, common_pb2, control_pb2

E = TypeVar("E", bound=IntEnum)


def timestamp(value: datetime | None) -> Timestamp:
    ts = Timestamp()
    if value is not None:
        ts.FromDatetime(value.astimezone(UTC))
    return ts


def from_timestamp(ts: Timestamp) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def kdf_to_proto(params: KdfParams) -> control_pb2.KdfParams:
    return control_pb2.KdfParams(
        algorithm=params.algorithm, salt=params.salt, log2_n=params.log2_n, r=params.r, p=params.p
    )


def kdf_from_proto(msg: control_pb2.KdfParams) -> KdfParams:
    """KDF parameters for a new password: below the fixed floor is refused, so every
    account set up through the API meets it."""
    params = KdfParams(algorithm=msg.algorithm, salt=msg.salt, log2_n=msg.log2_n, r=msg.r, p=msg.p)
    try:
        require_kdf_floor(params)
    except KdfPolicyError as e:
        raise InvalidRequestError(
            f"password key derivation {params.describe()} refused: new passwords need at "
            f"least scrypt N=2^{FLOOR_LOG2_N}, r={FLOOR_R}"
        ) from e
    if len(params.salt) < 16:
        raise InvalidRequestError("the password key derivation salt must be at least 16 bytes")
    return params


def registration_from_proto(msg: control_pb2.DeviceRegistration) -> Registration:
    return Registration(
        name=msg.name.strip()[:255],
        os=msg.os[:64],
        arch=msg.arch[:64],
        timezone=msg.timezone[:64],
        client_version=msg.client_version[:64],
    )


def device_to_proto(device: DeviceRecord) -> common_pb2.DeviceInfo:
    return common_pb2.DeviceInfo(
        device_id=device.device_id,
        username=device.username,
        name=device.name,
        os=device.os,
        arch=device.arch,
        timezone=device.timezone,
        client_version=device.client_version,
        registered_at=timestamp(device.registered_at),
        last_seen=timestamp(device.last_seen),
        online=device.online,
        revoked=device.revoked,
    )


def user_to_proto(user: UserRecord) -> admin_pb2.UserInfo:
    return admin_pb2.UserInfo(
        user_id=user.user_id,
        username=user.username,
        role=int(user.role),  # type: ignore[arg-type]
        max_devices=user.max_devices,
        created_at=timestamp(user.created_at),
        device_count=user.device_count,
        policy_id=user.policy_id or "",
        totp_enabled=user.totp_enabled,
    )


# ---------------------------------------------------------------------- profiles, policies

# Protobuf JSON as stored: proto field names, integer enums (see store.profile_document).
_JSON_OPTIONS: dict[str, Any] = {
    "preserving_proto_field_name": True,
    "use_integers_for_enums": True,
}


def _to_json(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(msg, **_JSON_OPTIONS)


def _from_json(data: dict[str, Any], msg: Message) -> None:
    try:
        json_format.ParseDict(data, msg, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise InvalidRequestError(f"malformed document: {e}") from e


def profile_document(msg: common_pb2.Profile) -> dict[str, Any]:
    """The stored document for a Profile message (its read-only policy is dropped)."""
    return {
        "settings": _to_json(msg.settings),
        "items": [_to_json(i) for i in msg.items],
        "vaults": [_to_json(v) for v in msg.vaults],
        "schedules": [_to_json(s) for s in msg.schedules],
        "recovery_enabled": msg.recovery_enabled,
    }


def profile_to_proto(view: ProfileView) -> common_pb2.Profile:
    doc = view.document
    msg = common_pb2.Profile(
        username=view.username,
        version=view.version,
        recovery_enabled=bool(doc.get("recovery_enabled", False)),
    )
    _from_json(doc.get("settings", {}), msg.settings)
    for item in doc.get("items", []):
        _from_json(item, msg.items.add())
    for vault in doc.get("vaults", []):
        _from_json(vault, msg.vaults.add())
    for schedule in doc.get("schedules", []):
        _from_json(schedule, msg.schedules.add())
    if view.policy is not None:
        msg.policy.CopyFrom(policy_to_proto(view.policy))
    return msg


_POLICY_COLUMNS = ("policy_id", "name", "is_default", "version")


def policy_from_proto(msg: common_pb2.Policy) -> PolicyRecord:
    body = {k: v for k, v in _to_json(msg).items() if k not in _POLICY_COLUMNS}
    return PolicyRecord(msg.policy_id, msg.name, body, msg.is_default, msg.version)


def policy_message(data: object) -> common_pb2.Policy:
    """A Policy message from its JSON form (a ``comet-admin policy`` file, a console
    form, an API body): field names as in the proto, enums by name or number.
    Unknown fields are refused, so a typo is not silently dropped."""
    if not isinstance(data, dict):
        raise InvalidRequestError("a policy is a JSON object")
    policy = common_pb2.Policy()
    try:
        json_format.ParseDict(data, policy)
    except json_format.ParseError as e:
        raise InvalidRequestError(f"not a policy: {e}") from e
    return policy


def policy_to_proto(policy: PolicyRecord) -> common_pb2.Policy:
    msg = common_pb2.Policy()
    _from_json(policy.body, msg)
    msg.policy_id = policy.policy_id
    msg.name = policy.name
    msg.is_default = policy.is_default
    msg.version = policy.version
    return msg


# ---------------------------------------------------------------------- jobs


def _enum(cls: type[E], value: int, what: str) -> E:
    try:
        return cls(value)
    except ValueError as e:
        raise InvalidRequestError(f"unknown {what} {value}") from e


def job_from_proto(msg: common_pb2.Job) -> JobRecord:
    return JobRecord(
        job_id=msg.job_id,
        item_id=msg.item_id,
        vault_id=msg.vault_id,
        classification=_enum(
            JobClassification, msg.classification or JobClassification.UNKNOWN, "classification"
        ),
        status=_enum(JobStatus, msg.status or JobStatus.RUNNING, "job status"),
        started_at=from_timestamp(msg.started_at),
        ended_at=from_timestamp(msg.ended_at),
        counters=JobCounters(
            files=msg.counters.files,
            directories=msg.counters.directories,
            bytes=msg.counters.bytes,
            chunks=msg.counters.chunks,
            uploaded_bytes=msg.counters.uploaded_bytes,
            downloaded_bytes=msg.counters.downloaded_bytes,
        ),
        progress=JobProgress(
            counter=msg.progress.counter,
            bytes_done=msg.progress.bytes_done,
            items_done=msg.progress.items_done,
            bytes_total=msg.progress.bytes_total,
            items_total=msg.progress.items_total,
            current_path=msg.progress.current_path,
        ),
        snapshot_id=msg.snapshot_id,
        client_version=msg.client_version,
        error_message=msg.error_message,
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
        started_at=timestamp(job.started_at),
        ended_at=timestamp(job.ended_at),
        counters=common_pb2.JobCounters(
            files=c.files,
            directories=c.directories,
            bytes=c.bytes,
            chunks=c.chunks,
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
        error_message=job.error_message,
        abandoned_by=int(job.abandoned_by),  # type: ignore[arg-type]
    )


def log_from_proto(entries: Iterable[common_pb2.LogEntry]) -> list[LogLine]:
    return [
        LogLine(
            seq=e.seq,
            time=from_timestamp(e.time),
            severity=_enum(Severity, e.severity or Severity.INFO, "severity"),
            message=e.message,
        )
        for e in entries
    ]


def log_to_proto(line: LogLine) -> common_pb2.LogEntry:
    return common_pb2.LogEntry(
        time=timestamp(line.time),
        severity=int(line.severity),  # type: ignore[arg-type]
        message=line.message,
        seq=max(line.seq, 0),  # the server's own lines have no device seq
    )


def job_query_from_proto(msg: control_pb2.JobFilter) -> JobQuery:
    return JobQuery(
        username=msg.username,
        device_id=msg.device_id,
        item_id=msg.item_id,
        vault_id=msg.vault_id,
        statuses=tuple(_enum(JobStatus, s, "job status") for s in msg.statuses),
        classifications=tuple(
            _enum(JobClassification, c, "classification") for c in msg.classifications
        ),
        since=from_timestamp(msg.since),
        until=from_timestamp(msg.until),
        page_size=msg.page_size,
        page_token=msg.page_token,
    )


def job_page_to_proto(page: JobPage) -> control_pb2.ListAccountJobsReply:
    return control_pb2.ListAccountJobsReply(
        jobs=[job_to_proto(j) for j in page.jobs], next_page_token=page.next_page_token
    )
