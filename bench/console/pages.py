"""Server time of the web console's pages and API at fleet scale, over real HTTP.

Seeds a throwaway embedded PostgreSQL at schema 0016 with USERS users (each with a
Protected Item and a schedule per device, and a "Comet Server" bucket), DEVICES
devices per user, JOBS job rows and AUDIT audit events (bulk SQL with
generate_series: seeding is not what is measured), upgrades it to the newest schema
(timed: the console's migration on real rows), starts a real ``comet-server serve
--web-listen`` process on it, and asks every console page and /api/v1 list endpoint
RUNS times, one request at a time over loopback TCP (the first, warming request is
not counted). Prints the median and p95 milliseconds per page and the load average
(JSON with --json). The issue's target: every page under 200 ms at 10,000 users,
20,000 devices and 1,000,000 jobs (the defaults). ``/api/v1/openapi.json`` is the
floor: a request that reads nothing but the API key.

    .venv/bin/python -m bench.console.pages                       # full scale
    .venv/bin/python -m bench.console.pages --users 500 --jobs 20000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from bench.comet_processes import free_port
from comet.agent.credentials import KdfParams, derive_login_secrets
from comet.server.app import open_stores
from comet.server.clock import SystemClock
from comet.server.config import ServerConfig
from comet.server.embedded_postgres import EmbeddedPostgres
from comet.server.secret_box import SecretBox
from comet.server.store.accounts import Role
from comet.server.store.database import create_engine, migrate
from comet.server.web.session_cookie import CSRF_FIELD, SIGNIN_COOKIE

BIN = Path(sys.executable).parent
PORTAL_PASSWORD = "portal-bench-password"
TARGET_MS = 200.0
SEEDED_AT = "0016"
# Users get ids in order of their names; devices round-robin the jobs (numbered once).
SEED = [
    """INSERT INTO users (id, username, role, kdf, auth_hash, auth_salt, max_devices,
           created_at, profile, profile_version)
       SELECT gen_random_uuid()::text, 'user' || lpad(i::text, 6, '0'), 1, '{}'::json,
              '\\x00', '\\x00', 0, now() - (i || ' minutes')::interval, '{}'::json, 1
       FROM generate_series(1, %(users)s) i""",
    """INSERT INTO devices (id, user_id, name, os, arch, timezone, client_version,
           registered_at, last_seen, token_hash, connected_instance)
       SELECT gen_random_uuid()::text, u.id, 'laptop-' || d, 'linux', 'x86_64', 'UTC',
              '0.1.0', now() - interval '30 days', now() - (random() * interval '2 days'),
              md5(random()::text) || md5(random()::text),
              CASE WHEN random() < 0.3 THEN 'bench' END
       FROM users u, generate_series(1, %(devices)s) d
       WHERE u.role = 1""",
    # A Protected Item per device; three in four have an enabled schedule.
    """UPDATE users u SET profile = p.doc FROM (
         SELECT d.user_id, json_build_object(
           'settings', json_build_object(), 'recovery_enabled', false,
           'vaults', json_build_array(json_build_object('vault_id', 'vault-1',
                     'name', 'Comet', 'type', 1000)),
           'items', json_agg(json_build_object('item_id', 'item-' || d.id, 'name', 'Files',
                    'owner_device_id', d.id, 'type', 1)),
           'schedules', json_agg(json_build_object('schedule_id', 'sch-' || d.id,
                        'item_id', 'item-' || d.id, 'vault_id', 'vault-1',
                        'enabled', hashtext(d.id) %% 4 <> 0))) AS doc
         FROM devices d GROUP BY d.user_id) p
       WHERE p.user_id = u.id""",
    """CREATE TEMP TABLE numbered AS
       SELECT row_number() OVER (ORDER BY id) - 1 AS k, id, user_id FROM devices""",
    """INSERT INTO job_ids (job_id, user_id)
       SELECT 'job-' || n, d.user_id FROM generate_series(1, %(jobs)s) n
       JOIN numbered d ON d.k = n %% %(device_count)s""",
    # Newest first in n, 40 s apart: a year and more of history. Each job's last report
    # is its end, as on a real server: seeded "now", every job would be news to the
    # notification pump, whose first rounds would then read the whole history (one
    # query a job) while the pages are measured.
    """INSERT INTO jobs (job_id, user_id, device_id, item_id, vault_id, classification,
           status, started_at, ended_at, files, directories, bytes, chunks, uploaded_bytes,
           downloaded_bytes, progress_counter, progress_bytes_done, progress_items_done,
           progress_bytes_total, progress_items_total, progress_current_path, snapshot_id,
           client_version, error_message, last_report_at, abandoned_by)
       SELECT 'job-' || n, d.user_id, d.id, 'item-' || d.id, 'vault-1',
              CASE WHEN n %% 11 = 0 THEN 4003 ELSE 4001 END,
              CASE WHEN n %% 20 = 0 THEN 7002 WHEN n %% 7 = 0 THEN 7001 ELSE 5000 END,
              now() - (n * interval '40 seconds'), now() - (n * interval '40 seconds')
              + interval '5 minutes', 100, 10, 1000000, 5, 1000, 0, 0, 0, 0, 0, 0, '', '',
              '0.1.0', '', now() - (n * interval '40 seconds') + interval '5 minutes', 0
       FROM generate_series(1, %(jobs)s) n
       JOIN numbered d ON d.k = n %% %(device_count)s""",
    """INSERT INTO job_log (job_id, seq, time, severity, message)
       SELECT 'job-1', s, now() - interval '40 seconds' + s * interval '1 second', 2,
              'backed up /home/user/file-' || s
       FROM generate_series(1, 500) s""",
    """INSERT INTO buckets (id, user_id, former_owner, quota_bytes, used_bytes, created_at,
           immutable_seconds)
       SELECT gen_random_uuid()::text, u.id, '', 0, (random() * 1e11)::bigint,
              u.created_at, 0
       FROM users u WHERE u.role = 1""",
    """INSERT INTO audit_events (time, actor, action, target, source_address, success,
           details)
       SELECT now() - n * interval '26 seconds', 'admin',
              (ARRAY['login', 'device.register', 'profile.update', 'user.add'])[n %% 4 + 1],
              'user' || lpad((n %% %(users)s)::text, 6, '0'), '127.0.0.1', n %% 13 <> 0, ''
       FROM generate_series(1, %(audit)s) n""",
    "ANALYZE",
]


async def _accounts(url: str, root: Path) -> str:
    """An admin's API key, and a plain user with a real password for the portal."""
    engine = create_engine(url)
    stores = open_stores(
        engine, SystemClock(), ServerConfig(data_dir=root, bucket_dir=root / "buckets"),
        SecretBox(b"k" * 32),
    )  # fmt: skip
    await stores.accounts.create_user(
        "bench-admin", KdfParams.new(), b"a" * 32, role=Role.SUPER_ADMIN
    )
    login = await stores.accounts.login("bench-admin", b"a" * 32, source="b", admin_session=True)
    owner = await stores.accounts.authenticate_session(login.session_token, admin=True)
    key = (await stores.api_keys.create(owner, name="bench", role=Role.SUPER_ADMIN)).key
    kdf = KdfParams.new()
    secret = derive_login_secrets(PORTAL_PASSWORD, kdf).auth_key
    # Named like the seeded users, so it gets devices, jobs and a bucket like theirs.
    await stores.accounts.create_user("user000000", kdf, secret)
    await engine.dispose()
    return key


def _seed(url: str, users: int, devices: int, jobs: int, audit: int) -> dict[str, str]:
    """Seeds the fleet; returns ids the pages are asked about."""
    values = {"users": users, "devices": devices, "jobs": jobs, "audit": audit}
    with psycopg.connect(url) as conn:
        for statement in SEED:
            if "numbered d" in statement:
                count = conn.execute("SELECT count(*) FROM devices").fetchone()
                values["device_count"] = count[0] if count else 0
            conn.execute(statement, values)
            conn.commit()
        device = conn.execute(
            "SELECT d.id FROM devices d JOIN users u ON u.id = d.user_id "
            "WHERE u.username = 'user000042' ORDER BY d.id LIMIT 1"
        ).fetchone()
        portal_job = conn.execute(
            "SELECT j.job_id FROM jobs j JOIN users u ON u.id = j.user_id "
            "WHERE u.username = 'user000000' ORDER BY j.started_at DESC LIMIT 1"
        ).fetchone()
    assert device is not None and portal_job is not None
    return {"device": device[0], "portal_job": portal_job[0]}


def _pages(ids: dict[str, str], users: int, devices: int) -> tuple[list[str], list[str]]:
    """(admin pages and endpoints, portal pages and endpoints)."""
    now = datetime.now(UTC)
    day = f"since={(now - timedelta(days=3)).date()}&until={(now - timedelta(days=2)).date()}"
    last_users = -(-(users + 2) // 50)
    last_devices = -(-(users * devices) // 50)
    jobs_filters = [
        "", "?user=user000042", f"?device={ids['device']}", "?status=ERROR",
        "?status=WARNING&classification=BACKUP", f"?{day}", "?status=ERROR&user=user000042",
    ]  # fmt: skip
    admin = [
        "/api/v1/openapi.json",  # the floor: no database work beyond the API key
        "/dashboard", "/users", "/users?q=user0042", f"/users?page={last_users}",
        "/users/user000042", "/devices", "/devices?online=online", "/devices?q=user00004",
        f"/devices?page={last_devices}",
        *(f"/jobs{f}" for f in jobs_filters), "/jobs/job-1", "/audit", "/audit?action=user.add",
        "/buckets", "/policies", "/server", "/api-keys",
        "/api/v1/dashboard", "/api/v1/users", "/api/v1/users?q=user0042",
        f"/api/v1/users?page={last_users}", "/api/v1/users/user000042", "/api/v1/devices",
        f"/api/v1/devices?page={last_devices}", "/api/v1/devices?online=offline",
        *(f"/api/v1/jobs{f}" for f in jobs_filters), "/api/v1/jobs.csv?status=ERROR",
        "/api/v1/jobs/job-1", "/api/v1/audit", "/api/v1/buckets", "/api/v1/policies",
        "/api/v1/server",
    ]  # fmt: skip
    portal = [
        "/portal", f"/portal/jobs/{ids['portal_job']}", "/api/v1/me/devices", "/api/v1/me/jobs",
        f"/api/v1/me/jobs/{ids['portal_job']}",
    ]  # fmt: skip
    return admin, portal


def _portal_client(base: str) -> httpx.Client:
    """A client signed in as the portal user through the sign-in form."""
    client = httpx.Client(base_url=base, timeout=60)
    client.get("/signin")
    nonce = client.cookies.get(SIGNIN_COOKIE, "")
    reply = client.post(
        "/signin",
        data={"username": "user000000", "password": PORTAL_PASSWORD, CSRF_FIELD: nonce},
        follow_redirects=False,
    )
    assert reply.status_code == 303 and "err=" not in reply.headers["location"], reply.headers
    return client


def _measure(client: httpx.Client, paths: list[str], runs: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {}
    for path in paths:
        reply = client.get(path)  # warm
        assert reply.status_code == 200, (path, reply.status_code, reply.text[:300])
        for _ in range(runs):
            started = time.perf_counter()
            reply = client.get(path)
            timings.setdefault(path, []).append((time.perf_counter() - started) * 1000)
            assert reply.status_code == 200, (path, reply.status_code, reply.text[:300])
    return timings


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _serve(root: Path, url: str, web_port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            str(BIN / "comet-server"), "serve", "--data-dir", str(root / "server"),
            "--database-url", url, "--listen", f"127.0.0.1:{free_port()}",
            "--web-listen", f"127.0.0.1:{web_port}",
            # The missed-run sweep reads every profile: not during the measurement.
            "--maintenance-seconds", "3600",
        ],
        stdout=subprocess.PIPE, stderr=(root / "server.log").open("w"), text=True,
        env={**os.environ, "GRPC_VERBOSITY": "ERROR"},
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on"):
        proc.kill()
        raise SystemExit(f"comet-server did not start: {(root / 'server.log').read_text()}")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--devices", type=int, default=2, help="devices per user")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--audit", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="comet-console-bench-"))
    root.chmod(0o755)  # as root, PostgreSQL runs as the postgres user, who must enter it
    postgres = EmbeddedPostgres(root / "pg", fast=True)
    server: subprocess.Popen[str] | None = None
    try:
        url = postgres.start()
        # Seeded at 0016, then upgraded: the console's migration is timed on real rows.
        migrate(url, SEEDED_AT)
        key = asyncio.run(_accounts(url, root))
        started = time.perf_counter()
        ids = _seed(url, args.users, args.devices, args.jobs, args.audit)
        print(
            f"seeded {args.users} users, {args.users * args.devices} devices, {args.jobs} jobs, "
            f"{args.audit} audit events in {time.perf_counter() - started:.0f} s", flush=True
        )  # fmt: skip
        started = time.perf_counter()
        migrate(url)
        print(f"migrated {SEEDED_AT} -> head in {time.perf_counter() - started:.1f} s", flush=True)
        web_port = free_port()
        server = _serve(root, url, web_port)
        base = f"http://127.0.0.1:{web_port}"
        admin_paths, portal_paths = _pages(ids, args.users, args.devices)
        with httpx.Client(
            base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=120
        ) as admin:
            timings = _measure(admin, admin_paths, args.runs)
        portal = _portal_client(base)
        try:
            timings |= _measure(portal, portal_paths, args.runs)
        finally:
            portal.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)
    rows = {p: {"median_ms": statistics.median(t), "p95_ms": _p95(t)} for p, t in timings.items()}
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"{'page':<58} {'median ms':>9} {'p95 ms':>8}")
    for path, row in rows.items():
        flag = "" if row["p95_ms"] < TARGET_MS else f"  over {TARGET_MS:.0f} ms"
        print(f"{path[:58]:<58} {row['median_ms']:>9.1f} {row['p95_ms']:>8.1f}{flag}")
    over = [p for p, r in rows.items() if r["p95_ms"] >= TARGET_MS]
    print(f"{len(rows) - len(over)} of {len(rows)} under {TARGET_MS:.0f} ms (p95)")
    if args.json:
        args.json.write_text(json.dumps({"scale": vars(args) | {"json": None}, "pages": rows}))


if __name__ == "__main__":
    main()
