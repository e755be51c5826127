"""Audit events partitioned by month (declarative range partitioning on ``time``).

Works on an existing database without copying it: the old table becomes the
``audit_events_legacy`` partition holding everything before the start of next month
(its range is proven with a CHECK constraint validated under a lock that lets
inserts wait only for the scan, then ATTACH skips its own scan), and new months get
partitions of their own, created ahead by the maintenance task
(``comet.server.store.partitions``), which also drops whole partitions past the
audit retention. A DEFAULT partition catches a row whose month has no partition yet,
so an insert never fails.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

from comet.server.store import partitions

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

COLUMNS = """
    id bigint NOT NULL DEFAULT nextval('audit_events_id_seq'),
    time timestamptz NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    source_address text NOT NULL,
    success boolean NOT NULL,
    details text NOT NULL
"""
INDEXES = {
    "ix_audit_action_target_time": "(action, target, time)",
    "ix_audit_action_source_time": "(action, source_address, time)",
    "ix_audit_time": "(time)",
}
MONTHS_AHEAD = 3


def upgrade() -> None:
    op.execute("ALTER TABLE audit_events RENAME TO audit_events_legacy")
    op.execute(
        "ALTER TABLE audit_events_legacy"
        " RENAME CONSTRAINT audit_events_pkey TO audit_events_legacy_pkey"
    )
    for name in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_legacy")
    op.execute(
        f"CREATE TABLE audit_events ({COLUMNS}, PRIMARY KEY (id, time)) PARTITION BY RANGE (time)"
    )
    op.execute("ALTER SEQUENCE audit_events_id_seq OWNED BY audit_events.id")
    op.execute("ALTER TABLE audit_events_legacy ALTER COLUMN id DROP DEFAULT")
    # Month bounds are UTC months.
    op.execute("SET LOCAL TIME ZONE 'UTC'")
    # Everything up to the start of next month stays where it is.
    op.execute(partitions.attach_legacy_sql("audit_events", "time", "id", MONTHS_AHEAD))
    op.execute("CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT")
    for name, columns in INDEXES.items():
        # Built on the new partitions; the legacy partition's equal index is attached.
        op.execute(f"CREATE INDEX {name} ON audit_events {columns}")


def downgrade() -> None:
    op.execute("ALTER TABLE audit_events RENAME TO audit_events_partitioned")
    op.execute(
        "ALTER TABLE audit_events_partitioned"
        " RENAME CONSTRAINT audit_events_pkey TO audit_events_partitioned_pkey"
    )
    op.execute(
        "CREATE TABLE audit_events (id bigint NOT NULL DEFAULT nextval('audit_events_id_seq'),"
        " time timestamptz NOT NULL, actor text NOT NULL, action text NOT NULL,"
        " target text NOT NULL, source_address text NOT NULL, success boolean NOT NULL,"
        " details text NOT NULL, CONSTRAINT audit_events_pkey PRIMARY KEY (id))"
    )
    op.execute("INSERT INTO audit_events SELECT * FROM audit_events_partitioned")
    op.execute("ALTER SEQUENCE audit_events_id_seq OWNED BY audit_events.id")
    op.execute("DROP TABLE audit_events_partitioned")
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON audit_events {columns}")
