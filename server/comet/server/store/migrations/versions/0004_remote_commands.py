"""Remote commands routed between server instances.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "remote_commands",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column(
            "device_id",
            sa.String(36),
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("origin_instance", sa.String(64), nullable=False),
        sa.Column("target_instance", sa.String(64), nullable=False),
        sa.Column("command", sa.LargeBinary, nullable=False),
        sa.Column("reply", sa.LargeBinary, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("timeout_seconds", sa.Float, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("answered_at", TS, nullable=True),
    )
    op.create_index(
        "ix_remote_commands_target_status", "remote_commands", ["target_instance", "status"]
    )
    op.create_index("ix_remote_commands_created", "remote_commands", ["created_at"])


def downgrade() -> None:
    op.drop_table("remote_commands")
