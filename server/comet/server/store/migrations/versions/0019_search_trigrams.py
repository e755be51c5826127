"""Trigram indexes for the console's substring searches (``q`` on /users and /devices),
and indexes for the dashboard's short lists.

A search matches ``ILIKE '%text%'`` on users' names, devices' names and devices' ids:
no B-tree helps a pattern with a leading wildcard, so at 10,000 users and 20,000
devices every search read both tables. ``pg_trgm``'s GIN indexes answer ``ILIKE``
(case-insensitive, with ``\\``-escaped wildcards) from the index for a text of three
characters or more; the search's meaning does not change.

``pg_trgm`` ships with PostgreSQL (Debian: in ``postgresql-15``; elsewhere often in a
``-contrib`` package) and is a trusted extension since PostgreSQL 13: the database's
owner may create it. Where it is not installed, or may not be created, this migration
logs a warning and creates no index: searches work as before, reading the tables.
Installing it later and running the statements in ``TRIGRAM_INDEXES`` (docs/operator.md,
"Search indexes (pg_trgm)") adds the indexes; the server uses them with no restart.

The dashboard's first devices needing attention (failed, then overdue) and its largest
buckets are read from partial indexes in the lists' order, not by sorting every device
and bucket: ``ix_devices_failed_attention`` (a failed latest backup: the error statuses
of ``notify.events.ERROR_STATUSES``, written out: the query names them inline, so that
PostgreSQL matches the index's predicate), ``ix_devices_overdue_attention`` and
``ix_buckets_used_bytes``.

Deleted jobs leave the devices' backup summaries (migration 0017): a statement trigger
on ``jobs`` (its deleted rows as a transition table) counts again each device whose
latest backup or latest good backup was among them, so no dashboard says "last backup
OK" from a job that is gone, whoever deletes (an administrator's SQL, a user's deletion
cascading, a future history retention). Dropping or detaching a partition of ``jobs``
deletes no row and fires nothing: code that does must call
``comet_device_backup_recount`` for the devices concerned.

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


# TIMEOUT, ERROR, QUOTA_EXCEEDED, MISSED, ABANDONED (notify.events.ERROR_STATUSES).
ERROR_CODES = "(7000, 7002, 7003, 7004, 7007)"
GOOD_OR_REGISTERED = "(coalesce(last_good_backup_at, registered_at))"


BACKUP = 4001
GOOD = "(5000, 7001)"  # SUCCESS, WARNING
FORGET = f"""
CREATE FUNCTION comet_device_backup_forget() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM comet_device_backup_recount(d.id) FROM devices d
    WHERE d.id IN (
        SELECT g.device_id FROM gone g WHERE g.classification = {BACKUP})
      AND EXISTS (
        SELECT 1 FROM gone g WHERE g.device_id = d.id AND g.classification = {BACKUP}
          AND (g.job_id = d.last_backup_job_id
               OR (g.status IN {GOOD} AND g.ended_at >= d.last_good_backup_at)));
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(FORGET)
    op.execute(
        "CREATE TRIGGER jobs_device_summary_delete AFTER DELETE ON jobs"
        " REFERENCING OLD TABLE AS gone FOR EACH STATEMENT"
        " EXECUTE FUNCTION comet_device_backup_forget()"
    )
    op.execute(
        "CREATE INDEX ix_devices_failed_attention ON devices"
        f" (last_backup_ended_at DESC NULLS LAST, {GOOD_OR_REGISTERED}, id)"
        f" WHERE revoked_at IS NULL AND last_backup_status IN {ERROR_CODES}"
    )
    op.execute(
        f"CREATE INDEX ix_devices_overdue_attention ON devices ({GOOD_OR_REGISTERED}, id)"
        " WHERE revoked_at IS NULL AND backup_scheduled"
    )
    op.execute("CREATE INDEX ix_buckets_used_bytes ON buckets (used_bytes DESC, id)")
    bind = op.get_bind()
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).scalar()
    if not available:
        log.warning(
            "PostgreSQL has no pg_trgm extension (install its contrib package): the "
            "console's user and device searches will read every row (slower with "
            "thousands of devices); see docs/operator.md, 'Search indexes (pg_trgm)'"
        )
        return
    try:
        with bind.begin_nested():  # a refusal must not abort the migration's transaction
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as e:
        log.warning(
            "could not create the pg_trgm extension (%s): the console's searches will "
            "read every row; see docs/operator.md, 'Search indexes (pg_trgm)'",
            str(e.orig).strip() if e.orig else e,
        )
        return
    for statement in TRIGRAM_INDEXES:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER jobs_device_summary_delete ON jobs")
    op.execute("DROP FUNCTION comet_device_backup_forget()")
    for index in ("ix_buckets_used_bytes", "ix_devices_overdue_attention"):
        op.execute(f"DROP INDEX {index}")
    op.execute("DROP INDEX ix_devices_failed_attention")
    # The extension stays: other databases' objects or an administrator may use it.
    for name in ("ix_devices_id_trgm", "ix_devices_name_trgm", "ix_users_username_trgm"):
        op.execute(f"DROP INDEX IF EXISTS {name}")
