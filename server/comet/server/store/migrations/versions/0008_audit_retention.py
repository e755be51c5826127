"""Audit events are pruned by age: an index on their time.

Revision ID: 0008
Revises: 0005 (re-chained after merging main, where 0009 is)
"""

from alembic import op

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_time", "audit_events", ["time"])


def downgrade() -> None:
    op.drop_index("ix_audit_time", table_name="audit_events")
