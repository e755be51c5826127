"""SQLAlchemy models. Every schema change is also an alembic migration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[int] = mapped_column(Integer)
    kdf: Mapped[dict[str, Any]] = mapped_column(JSON)
    auth_hash: Mapped[bytes] = mapped_column(LargeBinary)
    auth_salt: Mapped[bytes] = mapped_column(LargeBinary)
    totp_secret: Mapped[str | None] = mapped_column(Text, nullable=True)  # sealed
    # A secret handed out by BeginTotpEnrolment, active only once a code confirms it.
    totp_pending_secret: Mapped[str | None] = mapped_column(Text, nullable=True)  # sealed
    # The last accepted time step: a code is good for one login only.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_devices: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    profile: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    profile_version: Mapped[int] = mapped_column(BigInteger, default=1)
    policy_id: Mapped[str | None] = mapped_column(
        ForeignKey("policies.id", ondelete="SET NULL"), nullable=True
    )


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (Index("ix_devices_registered", "registered_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text)
    os: Mapped[str] = mapped_column(Text, default="")
    arch: Mapped[str] = mapped_column(Text, default="")
    timezone: Mapped[str] = mapped_column(Text, default="")
    client_version: Mapped[str] = mapped_column(Text, default="")
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The server instance holding this device's live connection, if any.
    connected_instance: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Its backup summary for the dashboard (migration 0017): whether it owns a
    # Protected Item with an enabled schedule (set on each profile write), its latest
    # backup job and when its newest good backup ended (a trigger on jobs keeps them).
    backup_scheduled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_backup_job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_backup_started_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    last_backup_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_backup_ended_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    last_good_backup_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class Session(Base):
    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    is_admin: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_action_target_time", "action", "target", "time"),
        Index("ix_audit_action_source_time", "action", "source_address", "time"),
        Index("ix_audit_time", "time"),  # retention pruning
        Index("ix_audit_action_id", "action", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    source_address: Mapped[str] = mapped_column(Text, default="")
    success: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[str] = mapped_column(Text, default="")


class ServerSetting(Base):
    """Secrets and settings shared by every server instance (they share the database)."""

    __tablename__ = "server_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class Policy(Base):
    """A policy; ``body`` holds the Policy message fields other than the columns."""

    __tablename__ = "policies"
    __table_args__ = (
        # At most one default policy.
        Index(
            "uq_policies_default", "is_default", unique=True, postgresql_where=text("is_default")
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(BigInteger, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobId(Base):
    """Every job id once: what makes a job id unique (``jobs`` is partitioned by
    ``started_at``, which a later report may change, so its key holds that too) and
    what the job's row and log lines hang off (migration 0016). It also holds the
    job's ``started_at``, kept equal to the job row's, so a lookup by id reaches the
    job's own month only (migration 0018)."""

    __tablename__ = "job_ids"
    __table_args__ = (Index("ix_job_ids_user", "user_id"),)

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """Partitioned by month on ``started_at``; the table's key is (job_id,
    started_at), job ids are unique through ``job_ids``."""

    __tablename__ = "jobs"
    __table_args__ = (
        # Keyset pages of the history: (started_at, job_id), overall and filtered.
        Index("ix_jobs_started_job", "started_at", "job_id", postgresql_include=["status"]),
        Index("ix_jobs_user_started_job", "user_id", "started_at", "job_id"),
        Index("ix_jobs_device_started_job", "device_id", "started_at", "job_id"),
        Index("ix_jobs_status_started_job", "status", "started_at", "job_id"),
        Index("ix_jobs_item_started", "item_id", "started_at"),
        Index("ix_jobs_vault_started", "vault_id", "started_at"),
        Index(
            "ix_jobs_good_backups",
            "device_id",
            "ended_at",
            postgresql_where=text("classification = 4001 AND status IN (5000, 7001)"),
        ),
        Index("ix_jobs_status_report", "status", "last_report_at"),
        Index("ix_jobs_last_report", "last_report_at"),
    )

    job_id: Mapped[str] = mapped_column(
        ForeignKey("job_ids.job_id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(String(36))
    item_id: Mapped[str] = mapped_column(String(64), default="")
    vault_id: Mapped[str] = mapped_column(String(64), default="")
    classification: Mapped[int] = mapped_column(Integer)
    status: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    files: Mapped[int] = mapped_column(BigInteger, default=0)
    directories: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    chunks: Mapped[int] = mapped_column(BigInteger, default=0)
    uploaded_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    downloaded_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_counter: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_items_done: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_items_total: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_current_path: Mapped[str] = mapped_column(Text, default="")
    snapshot_id: Mapped[str] = mapped_column(Text, default="")
    client_version: Mapped[str] = mapped_column(Text, default="")
    error_message: Mapped[str] = mapped_column(Text, default="")
    last_report_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # For ABANDONED jobs: 1 = the server's timeout, 2 = the device after a restart.
    abandoned_by: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")


class JobLogEntry(Base):
    """One log line. Device lines keep the device's seq (>= 1); lines the server adds
    (abandoned, revived, missed) get negative seqs so they never collide."""

    __tablename__ = "job_log"
    __table_args__ = (Index("ix_job_log_time", "time"),)

    job_id: Mapped[str] = mapped_column(
        ForeignKey("job_ids.job_id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    severity: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)


class RemoteCommand(Base):
    """A remote command handed from the instance an admin called to the instance that
    holds the device's live connection (see ``comet.server.routing``)."""

    __tablename__ = "remote_commands"
    __table_args__ = (
        Index("ix_remote_commands_target_status", "target_instance", "status"),
        Index("ix_remote_commands_created", "created_at"),
    )

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    origin_instance: Mapped[str] = mapped_column(String(64))
    target_instance: Mapped[str] = mapped_column(String(64))
    command: Mapped[bytes] = mapped_column(LargeBinary)
    reply: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # pending -> delivered -> answered | failed; pending -> expired when nobody claims it.
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text, default="")
    timeout_seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Bucket(Base):
    """A "Comet Server" Storage Vault bucket; its objects live on the server's disk.
    Devices open it with credentials of their own (``comet.server.buckets.credentials``)."""

    __tablename__ = "buckets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # NULL once the account was deleted with its data kept (see ``former_owner``).
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True, nullable=True
    )
    former_owner: Mapped[str] = mapped_column(Text, default="")
    quota_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # 0 = unlimited
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Immutable bucket: objects cannot be overwritten, and deleted only with a grant
    # once this many seconds old (into the trash). 0 = an ordinary bucket.
    immutable_seconds: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class BucketIntent(Base):
    """A put under way, or one that may have stored its object without committing
    its usage (the instance died in between): written, with the bytes it reserves
    against the quotas (``size_bytes - old_bytes``), before the object is published,
    removed in the transaction that counts it. Old ones mark buckets whose usage is
    recounted (migrations 0014, 0018). No foreign key: its check would wait on the
    bucket row a reserving put holds locked."""

    __tablename__ = "bucket_intents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    bucket_id: Mapped[str] = mapped_column(String(36), index=True)
    key: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    old_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # the key's size before
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # the object's size


class EmailRecipient(Base):
    """Who gets which mail: a user's address (their jobs, their summary) or, with no
    user, an administrator's (every user's jobs by rule, the admin summary)."""

    __tablename__ = "email_recipients"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=True
    )
    address: Mapped[str] = mapped_column(Text)
    # all | warnings | errors | none: which ended jobs are mailed.
    job_rule: Mapped[str] = mapped_column(String(16))
    # none | daily | weekly
    summary: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(Text)  # sealed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NotifyDelivery(Base):
    """One mail or webhook call to make: the queue every instance's worker claims from
    (``SELECT … FOR UPDATE SKIP LOCKED``), and afterwards the delivery log."""

    __tablename__ = "notify_outbox"
    __table_args__ = (
        UniqueConstraint("kind", "target", "event_key", name="uq_notify_outbox_event"),
        Index(
            "ix_notify_outbox_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_notify_outbox_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # email | webhook
    target: Mapped[str] = mapped_column(Text)  # an address, or a webhook id
    event_key: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # pending -> sent | failed (gave up)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_response: Mapped[str] = mapped_column(Text, default="")


class ApiKey(Base):
    """An administrator's key for the HTTP API, acting with ``role``. Only a hash of
    the key is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[int] = mapped_column(Integer)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The key's first characters, so a person can tell their keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
