"""Notifications: email recipients, webhooks and the delivery queue.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "email_recipients",
        sa.Column("id", sa.String(36), primary_key=True),
        # NULL: an administrator's address (admin summaries and every user's jobs).
        sa.Column(
            "user_id",
            sa.String(36),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=True,
            index=True,
        ),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("job_rule", sa.String(16), nullable=False),
        sa.Column("summary", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "notify_outbox",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("event_key", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        sa.Column("last_response", sa.Text, nullable=False, server_default=""),
        sa.UniqueConstraint("kind", "target", "event_key", name="uq_notify_outbox_event"),
    )
    op.create_index(
        "ix_notify_outbox_due",
        "notify_outbox",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_notify_outbox_created", "notify_outbox", ["created_at"])
    op.create_index("ix_jobs_last_report", "jobs", ["last_report_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_last_report", "jobs")
    op.drop_table("notify_outbox")
    op.drop_table("webhooks")
    op.drop_table("email_recipients")
