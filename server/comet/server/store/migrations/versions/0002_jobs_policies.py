"""Job history and logs, policies, two-factor enrolment state.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
COUNTERS = (
    "files",
    "directories",
    "bytes",
    "chunks",
    "uploaded_bytes",
    "downloaded_bytes",
    "progress_counter",
    "progress_bytes_done",
    "progress_items_done",
    "progress_bytes_total",
    "progress_items_total",
)


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index(
        "uq_policies_default",
        "policies",
        ["is_default"],
        unique=True,
        postgresql_where=sa.text("is_default"),
    )
    # Assignments that pointed nowhere (there were no policies before) are dropped.
    op.execute("UPDATE users SET policy_id = NULL")
    op.create_foreign_key(
        "fk_users_policy_id", "users", "policies", ["policy_id"], ["id"], ondelete="SET NULL"
    )
    op.add_column("users", sa.Column("totp_pending_secret", sa.Text, nullable=True))
    op.add_column("users", sa.Column("totp_last_step", sa.BigInteger, nullable=True))

    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column(
            "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("device_id", sa.String(36), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("vault_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("classification", sa.Integer, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in COUNTERS),
        sa.Column("progress_current_path", sa.Text, nullable=False, server_default=""),
        sa.Column("snapshot_id", sa.Text, nullable=False, server_default=""),
        sa.Column("client_version", sa.Text, nullable=False, server_default=""),
        sa.Column("error_message", sa.Text, nullable=False, server_default=""),
        sa.Column("last_report_at", TS, nullable=False),
    )
    for name, columns in (
        ("ix_jobs_user_started", ["user_id", "started_at"]),
        ("ix_jobs_device_started", ["device_id", "started_at"]),
        ("ix_jobs_item_started", ["item_id", "started_at"]),
        ("ix_jobs_vault_started", ["vault_id", "started_at"]),
        ("ix_jobs_started", ["started_at"]),
        ("ix_jobs_status_report", ["status", "last_report_at"]),
    ):
        op.create_index(name, "jobs", columns)

    op.create_table(
        "job_log",
        sa.Column(
            "job_id",
            sa.String(64),
            sa.ForeignKey("jobs.job_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("time", TS, nullable=False),
        sa.Column("severity", sa.Integer, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_index("ix_job_log_time", "job_log", ["time"])


def downgrade() -> None:
    op.drop_table("job_log")
    op.drop_table("jobs")
    op.drop_column("users", "totp_last_step")
    op.drop_column("users", "totp_pending_secret")
    op.drop_constraint("fk_users_policy_id", "users", type_="foreignkey")
    op.drop_table("policies")
