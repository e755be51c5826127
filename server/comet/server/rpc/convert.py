"""Conversions between protobuf messages and the server's domain types."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from comet.agent.credentials import KdfParams
from comet.server.store.accounts import DeviceRecord, Registration, UserRecord
from comet.v1 import admin_pb2, common_pb2, control_pb2


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
    return KdfParams(algorithm=msg.algorithm, salt=msg.salt, log2_n=msg.log2_n, r=msg.r, p=msg.p)


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
