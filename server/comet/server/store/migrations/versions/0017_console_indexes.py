"""What the web console needs at fleet scale (10,000 users, 20,000 devices, 1,000,000
jobs): a per-device backup summary, so the dashboard's "latest backup failed" and
"overdue" need no look at the job history or at any profile, and the indexes its
lists page through.

Per device (``devices``):

- ``backup_scheduled``: the device owns a Protected Item with an enabled schedule
  (``profile_document.scheduled_devices``); the profile store sets it on each
  profile write, backfilled here from the stored profiles.
- ``last_backup_job_id`` / ``_started_at`` / ``_status`` / ``_ended_at``: its latest
  backup job (newest ``started_at``, then job id), and ``last_good_backup_at``: when
  its newest successful (or warning) backup ended. A trigger on ``jobs`` keeps them
  (every writer of jobs: reports, missed runs, abandoned jobs), adding each job
  row's news in one indexed UPDATE of the device row; should a backup job move back
  in time or lose its good status (rare: a device's late correction), the device's
  summary is counted again from its jobs. The trigger is on the partitioned parent,
  so months created later get it too. Backfilled here in one pass over the jobs.

Indexes: jobs in keyset order (started_at, job_id) overall and per user, device
and status; good backups per device (the recount); audit events per action in id
order; devices in registration order. ``CREATE INDEX`` on a partitioned table
builds the index on every partition (legacy and default included).

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

from comet.server.store import profile_document

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

BACKUP = 4001
GOOD = "(5000, 7001)"  # SUCCESS, WARNING
COLUMNS: list[sa.Column[object]] = [
    sa.Column("backup_scheduled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("last_backup_job_id", sa.String(64), nullable=True),
    sa.Column("last_backup_started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_backup_status", sa.Integer, nullable=True),
    sa.Column("last_backup_ended_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_good_backup_at", sa.DateTime(timezone=True), nullable=True),
]
INDEXES = {
    # With the status: the dashboard's jobs of the last 24 h by status, index only.
    "ix_jobs_started_job": "jobs (started_at, job_id) INCLUDE (status)",
    "ix_jobs_user_started_job": "jobs (user_id, started_at, job_id)",
    "ix_jobs_device_started_job": "jobs (device_id, started_at, job_id)",
    "ix_jobs_status_started_job": "jobs (status, started_at, job_id)",
    "ix_jobs_good_backups": (
        f"jobs (device_id, ended_at) WHERE classification = {BACKUP} AND status IN {GOOD}"
    ),
    "ix_audit_action_id": "audit_events (action, id)",
    "ix_devices_registered": "devices (registered_at, id)",
}
# Older indexes the ones above make redundant (a prefix of theirs).
REPLACED = {
    "ix_jobs_user_started": "jobs (user_id, started_at)",
    "ix_jobs_device_started": "jobs (device_id, started_at)",
    "ix_jobs_started": "jobs (started_at)",
}

RECOUNT = f"""
CREATE FUNCTION comet_device_backup_recount(device varchar) RETURNS void
LANGUAGE sql AS $$
    UPDATE devices SET
        (last_backup_job_id, last_backup_started_at, last_backup_status,
         last_backup_ended_at) = (
            SELECT j.job_id, j.started_at, j.status, j.ended_at FROM jobs j
            WHERE j.device_id = device AND j.classification = {BACKUP}
            ORDER BY j.started_at DESC, j.job_id DESC LIMIT 1),
        last_good_backup_at = (
            SELECT max(j.ended_at) FROM jobs j
            WHERE j.device_id = device AND j.classification = {BACKUP}
              AND j.status IN {GOOD})
    WHERE id = device
$$
"""
# The job is the device's latest backup (or as late as it): written over the row's own
# columns, so that a concurrent writer's update, once its lock is released, counts.
NEWER = (
    "(last_backup_started_at IS NULL"
    " OR (NEW.started_at, NEW.job_id) >= (last_backup_started_at, last_backup_job_id))"
)
SUMMARY = f"""
CREATE FUNCTION comet_device_backup_summary() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.classification = {BACKUP} AND (
        NEW.classification <> {BACKUP} OR NEW.device_id <> OLD.device_id
        OR NEW.started_at < OLD.started_at
        OR (OLD.status IN {GOOD} AND NOT (NEW.status IN {GOOD}
            AND NEW.ended_at IS NOT NULL AND NEW.ended_at >= OLD.ended_at))
    ) THEN
        -- What it added may have to be taken back: count the device again.
        PERFORM comet_device_backup_recount(OLD.device_id);
        IF NEW.device_id <> OLD.device_id AND NEW.classification = {BACKUP} THEN
            PERFORM comet_device_backup_recount(NEW.device_id);
        END IF;
        RETURN NULL;
    END IF;
    IF NEW.classification <> {BACKUP} THEN
        RETURN NULL;
    END IF;
    UPDATE devices SET
        last_backup_job_id = CASE WHEN {NEWER} THEN NEW.job_id ELSE last_backup_job_id END,
        last_backup_started_at =
            CASE WHEN {NEWER} THEN NEW.started_at ELSE last_backup_started_at END,
        last_backup_status = CASE WHEN {NEWER} THEN NEW.status ELSE last_backup_status END,
        last_backup_ended_at =
            CASE WHEN {NEWER} THEN NEW.ended_at ELSE last_backup_ended_at END,
        last_good_backup_at = CASE WHEN NEW.status IN {GOOD}
            THEN greatest(last_good_backup_at, NEW.ended_at) ELSE last_good_backup_at END
    WHERE id = NEW.device_id AND ({NEWER} OR (NEW.status IN {GOOD}
        AND NEW.ended_at > coalesce(last_good_backup_at, '-infinity')));
    RETURN NULL;
END
$$
"""
# Only changes that can move a summary fire the trigger (not progress reports).
TRIGGERS = [
    "CREATE TRIGGER jobs_device_summary_insert AFTER INSERT ON jobs"
    " FOR EACH ROW EXECUTE FUNCTION comet_device_backup_summary()",
    "CREATE TRIGGER jobs_device_summary_update AFTER UPDATE ON jobs FOR EACH ROW"
    " WHEN (OLD.status IS DISTINCT FROM NEW.status"
    " OR OLD.started_at IS DISTINCT FROM NEW.started_at"
    " OR OLD.ended_at IS DISTINCT FROM NEW.ended_at"
    " OR OLD.classification IS DISTINCT FROM NEW.classification"
    " OR OLD.device_id IS DISTINCT FROM NEW.device_id)"
    " EXECUTE FUNCTION comet_device_backup_summary()",
]
BACKFILL_LATEST = f"""
UPDATE devices d SET last_backup_job_id = l.job_id, last_backup_started_at = l.started_at,
    last_backup_status = l.status, last_backup_ended_at = l.ended_at
FROM (SELECT DISTINCT ON (device_id) device_id, job_id, started_at, status, ended_at
      FROM jobs WHERE classification = {BACKUP}
      ORDER BY device_id, started_at DESC, job_id DESC) l
WHERE l.device_id = d.id
"""
BACKFILL_GOOD = f"""
UPDATE devices d SET last_good_backup_at = g.ended
FROM (SELECT device_id, max(ended_at) AS ended FROM jobs
      WHERE classification = {BACKUP} AND status IN {GOOD} GROUP BY device_id) g
WHERE g.device_id = d.id
"""


def _backfill_scheduled() -> None:
    conn = op.get_bind()
    users = sa.table("users", sa.column("id"), sa.column("profile", sa.JSON))
    devices = sa.table(
        "devices", sa.column("id"), sa.column("user_id"), sa.column("backup_scheduled")
    )
    scheduled: list[str] = []
    for _, profile in conn.execute(sa.select(users.c.id, users.c.profile)).yield_per(500):
        scheduled += sorted(profile_document.scheduled_devices(profile))
    for start in range(0, len(scheduled), 5000):
        chunk = scheduled[start : start + 5000]
        conn.execute(devices.update().where(devices.c.id.in_(chunk)).values(backup_scheduled=True))


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("devices", column)
    op.execute(RECOUNT)
    op.execute(SUMMARY)
    # Jobs written meanwhile wait for the trigger, so none is missed by the backfill.
    op.execute("LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE")
    op.execute(BACKFILL_LATEST)
    op.execute(BACKFILL_GOOD)
    for trigger in TRIGGERS:
        op.execute(trigger)
    _backfill_scheduled()
    for name, target in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {target}")
    for name in REPLACED:
        op.execute(f"DROP INDEX {name}")
    op.execute("ANALYZE devices")


def downgrade() -> None:
    for name, target in REPLACED.items():
        op.execute(f"CREATE INDEX {name} ON {target}")
    for name in INDEXES:
        op.execute(f"DROP INDEX {name}")
    op.execute("DROP TRIGGER jobs_device_summary_update ON jobs")
    op.execute("DROP TRIGGER jobs_device_summary_insert ON jobs")
    op.execute("DROP FUNCTION comet_device_backup_summary()")
    op.execute("DROP FUNCTION comet_device_backup_recount(varchar)")
    for column in reversed(COLUMNS):
        op.drop_column("devices", column.name)
