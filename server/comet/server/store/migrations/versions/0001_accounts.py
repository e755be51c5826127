"""Accounts, devices, sessions, audit log, shared server settings.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("username", sa.String(255), nullable=False, unique=True),
        sa.Column("role", sa.Integer, nullable=False),
        sa.Column("kdf", sa.JSON, nullable=False),
        sa.Column("auth_hash", sa.LargeBinary, nullable=False),
        sa.Column("auth_salt", sa.LargeBinary, nullable=False),
        sa.Column("totp_secret", sa.Text, nullable=True),
        sa.Column("max_devices", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("profile", sa.JSON, nullable=False),
        sa.Column("profile_version", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("policy_id", sa.String(36), nullable=True),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("os", sa.Text, nullable=False),
        sa.Column("arch", sa.Text, nullable=False),
        sa.Column("timezone", sa.Text, nullable=False),
        sa.Column("client_version", sa.Text, nullable=False),
        sa.Column("registered_at", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("connected_instance", sa.String(64), nullable=True),
    )
    op.create_index("ix_devices_user_id", "devices", ["user_id"])
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("time", TS, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("source_address", sa.Text, nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_action_target_time", "audit_events", ["action", "target", "time"])
    op.create_index(
        "ix_audit_action_source_time", "audit_events", ["action", "source_address", "time"]
    )
    op.create_table(
        "server_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("server_settings")
    op.drop_table("audit_events")
    op.drop_table("sessions")
    op.drop_table("devices")
    op.drop_table("users")
