"""Trigram indexes for the console's substring searches (``q`` on /users and /devices).

A search matches ``ILIKE '%text%'`` on users' names, devices' names and devices' ids:
no B-tree helps a pattern with a leading wildcard, so at 10,000 users and 20,000
devices every search read both tables. ``pg_trgm``'s GIN indexes answer ``ILIKE``
(case-insensitive, with ``\\``-escaped wildcards) from the index for a text of three
characters or more; the search's meaning does not change.

``pg_trgm`` ships with PostgreSQL (Debian: in ``postgresql-15``; elsewhere often in a
``-contrib`` package) and is a trusted extension since PostgreSQL 13: the database's
owner may create it. Where it is not installed, or may not be created, this migration
logs a warning and creates no index: searches work as before, reading the tables.
Installing it later and running the statements in ``TRIGRAM_INDEXES`` (docs/console.md,
"Search indexes") adds the indexes; the server uses them with no restart.

Revision ID: 0019
Revises: 0018
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

log = logging.getLogger("comet.server.migrations")

TRIGRAM_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_users_username_trgm ON users USING gin (username gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS ix_devices_name_trgm ON devices USING gin (name gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS ix_devices_id_trgm ON devices USING gin (id gin_trgm_ops)",
)


def upgrade() -> None:
    bind = op.get_bind()
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).scalar()
    if not available:
        log.warning(
            "PostgreSQL has no pg_trgm extension (install its contrib package): the "
            "console's user and device searches will read every row (slower with "
            "thousands of devices); see docs/console.md, 'Search indexes'"
        )
        return
    try:
        with bind.begin_nested():  # a refusal must not abort the migration's transaction
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as e:
        log.warning(
            "could not create the pg_trgm extension (%s): the console's searches will "
            "read every row; see docs/console.md, 'Search indexes'",
            str(e.orig).strip() if e.orig else e,
        )
        return
    for statement in TRIGRAM_INDEXES:
        op.execute(statement)


def downgrade() -> None:
    # The extension stays: other databases' objects or an administrator may use it.
    for name in ("ix_devices_id_trgm", "ix_devices_name_trgm", "ix_users_username_trgm"):
        op.execute(f"DROP INDEX IF EXISTS {name}")
