"""Immutable (append-only) buckets: a protection period per bucket.

Revision ID: 0011
Revises: 0008 (main's head when written; the lead re-chains)
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "buckets",
        sa.Column("immutable_seconds", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("buckets", "immutable_seconds")
