"""Who abandoned a job: the server's timeout or the device after its own restart.

Revision ID: 0005
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs abandoned before this column existed were all abandoned by the server.
    op.add_column(
        "jobs", sa.Column("abandoned_by", sa.SmallInteger, nullable=False, server_default="0")
    )
    op.execute("UPDATE jobs SET abandoned_by = 1 WHERE status = 7007")


def downgrade() -> None:
    op.drop_column("jobs", "abandoned_by")
