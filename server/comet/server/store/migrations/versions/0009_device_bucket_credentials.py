"""Buckets are opened with per-device credentials, not one account-wide key.

The account-wide key hash is dropped (every device had a copy of that key in its
profile, so revoking a device could not take it away), and the copies are removed from
stored profiles. Devices of an account keep working: each receives its own credential
(see ``comet.server.buckets.credentials``) with the next profile it fetches.

A bucket can outlive its account (``comet-admin user delete --keep-data``): its owner
reference becomes NULL and ``former_owner`` keeps the username for ``bucket list``.

Revision ID: 0009
Revises: 0004
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0004"
branch_labels = None
depends_on = None


def _without_bucket_keys(profile: Any) -> Any:
    if not isinstance(profile, dict):
        return None
    changed = False
    for vault in profile.get("vaults") or []:
        comet = vault.get("comet") if isinstance(vault, dict) else None
        if isinstance(comet, dict) and "bucket_key" in comet:
            del comet["bucket_key"]
            changed = True
    return profile if changed else None


def upgrade() -> None:
    op.drop_column("buckets", "key_hash")
    op.add_column("buckets", sa.Column("former_owner", sa.Text, nullable=False, server_default=""))
    op.drop_constraint("buckets_user_id_fkey", "buckets", type_="foreignkey")
    op.alter_column("buckets", "user_id", nullable=True)
    op.create_foreign_key(
        "buckets_user_id_fkey", "buckets", "users", ["user_id"], ["id"], ondelete="SET NULL"
    )
    conn = op.get_bind()
    users = sa.table("users", sa.column("id", sa.String), sa.column("profile", sa.JSON))
    for user_id, profile in conn.execute(sa.select(users.c.id, users.c.profile)).all():
        stripped = _without_bucket_keys(profile)
        if stripped is not None:
            conn.execute(users.update().where(users.c.id == user_id).values(profile=stripped))


def downgrade() -> None:
    op.execute("DELETE FROM buckets WHERE user_id IS NULL")
    op.drop_constraint("buckets_user_id_fkey", "buckets", type_="foreignkey")
    op.alter_column("buckets", "user_id", nullable=False)
    op.create_foreign_key(
        "buckets_user_id_fkey", "buckets", "users", ["user_id"], ["id"], ondelete="CASCADE"
    )
    op.drop_column("buckets", "former_owner")
    # The old account-wide keys are gone for good: a downgraded server refuses every
    # bucket until new keys are set by hand.
    op.add_column(
        "buckets", sa.Column("key_hash", sa.String(64), nullable=False, server_default="")
    )
