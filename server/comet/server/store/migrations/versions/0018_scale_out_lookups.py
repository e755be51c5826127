"""Puts reserve quota outside the bucket row lock; jobs are found in their own month.

- ``bucket_intents`` rows become one per put under way (own id; a retried put of a
  key no longer overwrites the intent a killed instance left), carrying the key's
  size before (``old_bytes``) and the object's (``size_bytes``): what the put
  reserves against the quotas while its object is written with no lock held, and
  what a recount needs for puts still under way.
- ``job_ids`` gets the job's ``started_at`` (kept equal to the job row's), so a
  lookup by job id names the partition key and PostgreSQL prunes the other months.
  Filled from ``jobs`` in one UPDATE (a scan of both tables; ~1 M rows take seconds).

Revision ID: 0018
Revises: 0017
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE bucket_intents DROP CONSTRAINT bucket_intents_pkey")
    op.execute(
        "ALTER TABLE bucket_intents ADD COLUMN id varchar(36) NOT NULL"
        " DEFAULT gen_random_uuid()::text,"
        " ADD COLUMN old_bytes bigint NOT NULL DEFAULT 0,"
        " ADD COLUMN size_bytes bigint NOT NULL DEFAULT 0"
    )
    op.execute("ALTER TABLE bucket_intents ALTER COLUMN id DROP DEFAULT")
    op.execute("ALTER TABLE bucket_intents ADD PRIMARY KEY (id)")
    op.execute("CREATE INDEX ix_bucket_intents_bucket_id ON bucket_intents (bucket_id)")

    op.execute("ALTER TABLE job_ids ADD COLUMN started_at timestamptz")
    op.execute(
        "UPDATE job_ids SET started_at = jobs.started_at FROM jobs"
        " WHERE jobs.job_id = job_ids.job_id"
    )
    # A claimed id whose job row is missing (cannot happen through the server) keeps
    # a time in the past: lookups then find nothing, as before.
    op.execute("UPDATE job_ids SET started_at = 'epoch' WHERE started_at IS NULL")
    op.execute("ALTER TABLE job_ids ALTER COLUMN started_at SET NOT NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE job_ids DROP COLUMN started_at")
    op.execute("DROP INDEX ix_bucket_intents_bucket_id")
    op.execute("ALTER TABLE bucket_intents DROP CONSTRAINT bucket_intents_pkey")
    # One intent per key again: keep the oldest (the one a recount must not miss).
    op.execute(
        "DELETE FROM bucket_intents a USING bucket_intents b WHERE a.bucket_id = b.bucket_id"
        " AND a.key = b.key AND (a.started_at, a.id) > (b.started_at, b.id)"
    )
    op.execute(
        "ALTER TABLE bucket_intents DROP COLUMN id, DROP COLUMN old_bytes, DROP COLUMN size_bytes"
    )
    op.execute("ALTER TABLE bucket_intents ADD PRIMARY KEY (bucket_id, key)")
