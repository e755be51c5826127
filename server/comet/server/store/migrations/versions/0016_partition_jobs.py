"""Jobs partitioned by month (declarative range partitioning on ``started_at``).

A job's ``started_at`` can change after its first report (a device's first report
may carry no start time, the server then uses the time it arrived; a later report
brings the device's own), so the key of the partitions, which must hold the
partition column, cannot be what makes a job id unique. ``job_ids`` (job id, owner)
does that instead: a report claims its job id there (``ON CONFLICT DO NOTHING``,
the outbox dedup) and only a claimed id gets a row in ``jobs``; ``job_log`` and the
job rows hang off it with cascading keys, so deleting a user still deletes their
jobs and logs. ``job_log`` itself stays one table: its lines are pruned by time
(``job_log_retention_days``) and its key (job id, seq) dedups re-sent lines, which a
key holding a time could not do for lines the server timestamps.

Same technique as 0013 for an existing database: the old table becomes the
``jobs_legacy`` partition holding everything before the start of next month (range
proven by a validated CHECK so ATTACH skips its scan); new months get partitions of
their own, created ahead by the maintenance task (``comet.server.store.partitions``);
a DEFAULT partition catches a row whose month has none yet.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

from comet.server.store import partitions

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

COLUMNS = """
    job_id varchar(64) NOT NULL,
    user_id varchar(36) NOT NULL,
    device_id varchar(36) NOT NULL,
    item_id varchar(64) NOT NULL DEFAULT '',
    vault_id varchar(64) NOT NULL DEFAULT '',
    classification integer NOT NULL,
    status integer NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at timestamptz,
    files bigint NOT NULL DEFAULT 0,
    directories bigint NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0,
    chunks bigint NOT NULL DEFAULT 0,
    uploaded_bytes bigint NOT NULL DEFAULT 0,
    downloaded_bytes bigint NOT NULL DEFAULT 0,
    progress_counter bigint NOT NULL DEFAULT 0,
    progress_bytes_done bigint NOT NULL DEFAULT 0,
    progress_items_done bigint NOT NULL DEFAULT 0,
    progress_bytes_total bigint NOT NULL DEFAULT 0,
    progress_items_total bigint NOT NULL DEFAULT 0,
    progress_current_path text NOT NULL DEFAULT '',
    snapshot_id text NOT NULL DEFAULT '',
    client_version text NOT NULL DEFAULT '',
    error_message text NOT NULL DEFAULT '',
    last_report_at timestamptz NOT NULL,
    abandoned_by smallint NOT NULL DEFAULT 0
"""
INDEXES = {
    "ix_jobs_user_started": "(user_id, started_at)",
    "ix_jobs_device_started": "(device_id, started_at)",
    "ix_jobs_item_started": "(item_id, started_at)",
    "ix_jobs_vault_started": "(vault_id, started_at)",
    "ix_jobs_started": "(started_at)",
    "ix_jobs_status_report": "(status, last_report_at)",
    "ix_jobs_last_report": "(last_report_at)",
}
USER_KEY = (
    "CONSTRAINT jobs_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE"
)
MONTHS_AHEAD = 3


def upgrade() -> None:
    op.execute(
        "CREATE TABLE job_ids (job_id varchar(64) PRIMARY KEY,"
        " user_id varchar(36) NOT NULL REFERENCES users (id) ON DELETE CASCADE)"
    )
    op.execute("INSERT INTO job_ids SELECT job_id, user_id FROM jobs")
    op.execute("CREATE INDEX ix_job_ids_user ON job_ids (user_id)")
    op.execute("ALTER TABLE job_log DROP CONSTRAINT job_log_job_id_fkey")
    op.execute(
        "ALTER TABLE job_log ADD CONSTRAINT job_log_job_id_fkey FOREIGN KEY (job_id)"
        " REFERENCES job_ids (job_id) ON DELETE CASCADE"
    )
    op.execute("ALTER TABLE jobs RENAME TO jobs_legacy")
    op.execute("ALTER TABLE jobs_legacy RENAME CONSTRAINT jobs_pkey TO jobs_legacy_pkey")
    for name in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_legacy")
    # The legacy partition's key on users becomes the parent's on attach (same
    # columns and actions); the key on job_ids is cloned onto it and checked then.
    op.execute(
        "ALTER TABLE jobs_legacy RENAME CONSTRAINT jobs_user_id_fkey TO jobs_legacy_user_fkey"
    )
    op.execute(
        f"CREATE TABLE jobs ({COLUMNS}, PRIMARY KEY (job_id, started_at), {USER_KEY},"
        " CONSTRAINT jobs_job_id_fkey FOREIGN KEY (job_id) REFERENCES job_ids (job_id)"
        " ON DELETE CASCADE)"
        " PARTITION BY RANGE (started_at)"
    )
    op.execute("SET LOCAL TIME ZONE 'UTC'")
    # Everything up to the start of next month stays where it is.
    op.execute(partitions.attach_legacy_sql("jobs", "started_at", "job_id", MONTHS_AHEAD))
    op.execute("CREATE TABLE jobs_default PARTITION OF jobs DEFAULT")
    for name, columns in INDEXES.items():
        # Built on the new partitions; the legacy partition's equal index is attached.
        op.execute(f"CREATE INDEX {name} ON jobs {columns}")


def downgrade() -> None:
    op.execute("ALTER TABLE jobs RENAME TO jobs_partitioned")
    op.execute("ALTER TABLE jobs_partitioned RENAME CONSTRAINT jobs_pkey TO jobs_partitioned_pkey")
    for name in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_partitioned")
    op.execute("ALTER TABLE jobs_partitioned DROP CONSTRAINT jobs_user_id_fkey")
    op.execute(
        f"CREATE TABLE jobs ({COLUMNS}, CONSTRAINT jobs_pkey PRIMARY KEY (job_id), {USER_KEY})"
    )
    op.execute("INSERT INTO jobs SELECT * FROM jobs_partitioned")
    op.execute("ALTER TABLE job_log DROP CONSTRAINT job_log_job_id_fkey")
    op.execute("DELETE FROM job_log WHERE job_id NOT IN (SELECT job_id FROM jobs)")
    op.execute(
        "ALTER TABLE job_log ADD CONSTRAINT job_log_job_id_fkey FOREIGN KEY (job_id)"
        " REFERENCES jobs (job_id) ON DELETE CASCADE"
    )
    op.execute("DROP TABLE jobs_partitioned")
    op.execute("DROP TABLE job_ids")
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON jobs {columns}")
