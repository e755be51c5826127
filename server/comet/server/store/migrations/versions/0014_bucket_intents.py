"""Bucket intents: puts whose object may be stored but whose usage is not counted.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bucket_intents",
        sa.Column("bucket_id", sa.String(36), primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_bucket_intents_started_at", "bucket_intents", ["started_at"])


def downgrade() -> None:
    op.drop_table("bucket_intents")
