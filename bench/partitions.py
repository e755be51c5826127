"""The month-partitioning migration on a big existing database, and the plans of the
history queries before and after.

Starts a private PostgreSQL (or uses ``--database-url``, which must be empty),
migrates it to 0012, fills ``--rows`` job rows and as many audit events spread over
``--months`` months (server-side ``generate_series``, so filling is quick), then
prints EXPLAIN (ANALYZE, BUFFERS) of the job history and audit queries, times
``alembic upgrade`` to 0015 (0013 partitions the audit table in place), to 0016
(partitions the jobs table in place) and to head (0018 gives ``job_ids`` each job's
month, so lookups by id prune), and prints the plans after 0016 and at head.
Output: one JSON document (timings) after the plans.

Usage: bench/partitions.py [--rows 1000000] [--months 24] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from comet.server.embedded_postgres import EmbeddedPostgres
from comet.server.store.database import migrate

FILL = """
INSERT INTO users (id, username, role, kdf, auth_hash, auth_salt, created_at, profile,
                   profile_version, policy_id)
SELECT 'user-' || u, 'user' || u, 1, '{}', 'h', 's', now(), '{}', 1, NULL
FROM generate_series(0, %(users)s - 1) AS u;

INSERT INTO jobs (job_id, user_id, device_id, item_id, vault_id, classification, status,
                  started_at, ended_at, files, directories, bytes, chunks, uploaded_bytes,
                  downloaded_bytes, progress_counter, progress_bytes_done,
                  progress_items_done, progress_bytes_total, progress_items_total,
                  progress_current_path, snapshot_id, client_version, error_message,
                  last_report_at, abandoned_by)
SELECT md5(n::text), 'user-' || (n %% %(users)s), 'device-' || (n %% (%(users)s * 2)),
       'item-' || (n %% 7), 'vault-' || (n %% 3), 4001, 5000,
       now() - make_interval(secs => (n::float8 / %(rows)s) * %(months)s * 30 * 86400),
       now() - make_interval(secs => (n::float8 / %(rows)s) * %(months)s * 30 * 86400 - 600),
       1000, 10, 1 << 30, 1000, 1 << 20, 0, 0, 0, 0, 0, 0, '', md5(n::text || 's'),
       '0.1.0', '',
       now() - make_interval(secs => (n::float8 / %(rows)s) * %(months)s * 30 * 86400 - 600),
       0
FROM generate_series(0, %(rows)s - 1) AS n;

INSERT INTO audit_events (time, actor, action, target, source_address, success, details)
SELECT now() - make_interval(secs => (n::float8 / %(rows)s) * %(months)s * 30 * 86400),
       'user' || (n %% %(users)s),
       (ARRAY['login', 'device.register', 'profile.put', 'job.dispatch'])[1 + n %% 4],
       'user' || (n %% %(users)s), '10.0.' || (n %% 250) || '.' || (n %% 200), n %% 9 <> 0, ''
FROM generate_series(0, %(rows)s - 1) AS n;
ANALYZE;
"""

QUERIES = {
    # AdminService.ListJobs / comet-admin jobs --user: a user's newest jobs.
    "jobs of a user, newest first": (
        "SELECT * FROM jobs WHERE user_id = 'user-42'"
        " ORDER BY started_at DESC, job_id DESC LIMIT 51"
    ),
    # The same, bounded to the last week (history pages with --since).
    "jobs of the last 7 days": (
        "SELECT * FROM jobs WHERE started_at >= now() - interval '7 days'"
        " ORDER BY started_at DESC, job_id DESC LIMIT 51"
    ),
    # comet-admin job-log / a report's update: one job by id (every month's key probed).
    "a job by id": "SELECT * FROM jobs WHERE job_id = md5('4242')",
    # The same as the server asks it from 0018 on: its month from job_ids (an InitPlan),
    # so only that month's partition is probed (jobs._by_id).
    "a job by id, its month from job_ids": (
        "SELECT * FROM jobs WHERE job_id = md5('4242')"
        " AND started_at = (SELECT started_at FROM job_ids WHERE job_id = md5('4242'))"
    ),
    # comet-admin audit --action login: newest events.
    "audit of an action, newest first": (
        "SELECT * FROM audit_events WHERE action = 'login' ORDER BY id DESC LIMIT 100"
    ),
    # Login throttling: failures against a target from a source in the window.
    "audit failures in the throttle window": (
        "SELECT count(*), max(time) FROM audit_events WHERE action = 'login'"
        " AND source_address = '10.0.42.42' AND NOT success"
        " AND time > now() - interval '15 minutes'"
    ),
    # Retention: what is older than a year.
    "audit older than retention": (
        "SELECT count(*) FROM audit_events WHERE time < now() - interval '365 days'"
    ),
}


@contextmanager
def database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    root = Path(tempfile.mkdtemp(prefix="comet-partitions-"))
    root.chmod(0o755)
    postgres = EmbeddedPostgres(root / "pg")
    try:
        yield postgres.start()
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


NEEDS_0018 = {"a job by id, its month from job_ids"}


def plans(url: str, *, skip: set[str] | None = None) -> dict[str, str]:
    out = dict.fromkeys(skip or (), "(needs migration 0018)")
    with psycopg.connect(url) as conn:
        for name, sql in QUERIES.items():
            if name in out:
                continue
            rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}").fetchall()
            out[name] = "\n".join(r[0] for r in rows)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    with database(args.database_url) as url:
        migrate(url, "0012")
        started = time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            # Integers from argparse, formatted in: several statements take no parameters.
            sql = FILL % {
                "rows": int(args.rows),
                "months": int(args.months),
                "users": int(args.users),
            }
            conn.execute(sql.encode())
        fill_seconds = time.monotonic() - started
        before = plans(url, skip=NEEDS_0018)
        started = time.monotonic()
        migrate(url, "0015")
        migrate_seconds = time.monotonic() - started
        started = time.monotonic()
        migrate(url, "0016")
        jobs_migrate_seconds = time.monotonic() - started
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
        partitioned = plans(url, skip=NEEDS_0018)
        started = time.monotonic()
        migrate(url)
        lookup_migrate_seconds = time.monotonic() - started
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM audit_events)"
            ).fetchone()
        after = plans(url)
    for name in QUERIES:
        print(
            f"== {name}\n-- before (0012)\n{before[name]}\n-- partitioned (0016)\n"
            f"{partitioned[name]}\n-- head\n{after[name]}\n"
        )
    summary = {
        "rows": args.rows,
        "months": args.months,
        "fill_seconds": round(fill_seconds, 1),
        "migrate_seconds": round(migrate_seconds, 2),  # 0012 → 0015 (audit)
        "jobs_migrate_seconds": round(jobs_migrate_seconds, 2),  # 0015 → 0016 (jobs)
        "lookup_migrate_seconds": round(lookup_migrate_seconds, 2),  # 0016 → head (job_ids)
        "jobs_after": counts[0] if counts else None,
        "audit_events_after": counts[1] if counts else None,
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
