"""Server time of the web console's pages and API at fleet scale.

Seeds a throwaway embedded PostgreSQL with USERS users, DEVICES devices per user and
JOBS job rows (bulk SQL, not the stores: seeding is not what is measured), then asks
each page and endpoint RUNS times in-process (httpx over ASGI: the server's own time,
no network) and prints the median and worst milliseconds per page, plus JSON with
--json FILE. The issue's target: every page under 200 ms at 10,000 users, 20,000
devices and 1,000,000 jobs (the defaults).

    .venv/bin/python -m bench.console.pages                       # full scale
    .venv/bin/python -m bench.console.pages --users 500 --jobs 20000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

from comet.agent.credentials import KdfParams
from comet.server.administration import Administration
from comet.server.app import open_stores
from comet.server.clock import SystemClock
from comet.server.config import ServerConfig
from comet.server.embedded_postgres import EmbeddedPostgres
from comet.server.rpc.client_address import ClientAddresses
from comet.server.rpc.live import LiveRegistry
from comet.server.rpc.routing import CommandRouter
from comet.server.secret_box import SecretBox
from comet.server.store.accounts import Role
from comet.server.store.database import create_engine, migrate
from comet.server.web.access import Access
from comet.server.web.app import WebOptions, build_app
from comet.server.web.console import Console
from comet.server.web.session_cookie import CookieCodec

SEED = [
    """INSERT INTO users (id, username, role, kdf, auth_hash, auth_salt, max_devices,
           created_at, profile, profile_version)
       SELECT gen_random_uuid()::text, 'user' || lpad(i::text, 6, '0'), 1, '{}'::json,
              '\\x00', '\\x00', 0, now() - (i || ' minutes')::interval, '{}'::json, 1
       FROM generate_series(1, :users) i""",
    """INSERT INTO devices (id, user_id, name, os, arch, timezone, client_version,
           registered_at, last_seen, token_hash)
       SELECT gen_random_uuid()::text, u.id, 'laptop-' || d, 'linux', 'x86_64', 'UTC',
              '0.1.0', now() - interval '30 days', now() - (random() * interval '2 days'),
              md5(random()::text) || md5(random()::text)
       FROM users u, generate_series(1, :devices) d""",
    # Job ids are unique through job_ids, which the partitioned jobs rows refer to.
    """INSERT INTO job_ids (job_id, user_id)
       SELECT 'job-' || n, d.user_id FROM generate_series(1, :jobs) n
       JOIN numbered d ON d.k = n % :device_count""",
    """INSERT INTO jobs (job_id, user_id, device_id, item_id, vault_id, classification,
           status, started_at, ended_at, files, directories, bytes, chunks, uploaded_bytes,
           downloaded_bytes, progress_counter, progress_bytes_done, progress_items_done,
           progress_bytes_total, progress_items_total, progress_current_path, snapshot_id,
           client_version, error_message, last_report_at, abandoned_by)
       SELECT 'job-' || n, d.user_id, d.id, 'item-1', 'vault-1', 4001,
              CASE WHEN n % 20 = 0 THEN 7002 WHEN n % 7 = 0 THEN 7001 ELSE 5000 END,
              now() - (n * interval '40 seconds'), now() - (n * interval '40 seconds')
              + interval '5 minutes', 100, 10, 1000000, 5, 1000, 0, 0, 0, 0, 0, 0, '', '',
              '0.1.0', '', now(), 0
       FROM generate_series(1, :jobs) n
       JOIN numbered d ON d.k = n % :device_count""",
]
PAGES = [
    "/dashboard", "/users", "/users?q=user0042", "/users?page=100", "/users/user000042",
    "/devices", "/devices?online=online", "/devices?page=200", "/jobs",
    "/jobs?status=ERROR", "/jobs?user=user000042", "/audit", "/server",
    "/api/v1/users", "/api/v1/devices", "/api/v1/jobs", "/api/v1/dashboard",
]  # fmt: skip


async def _seed(url: str, users: int, devices: int, jobs: int) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(SEED[0]), {"users": users})
        await conn.execute(text(SEED[1]), {"devices": devices})
    # Jobs go round-robin over the devices, numbered once.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TEMP TABLE numbered AS SELECT row_number() OVER () - 1 AS k, id, "
                "user_id FROM devices"
            )
        )
        count = users * devices
        for statement in SEED[2:]:
            await conn.execute(text(statement), {"jobs": jobs, "device_count": count})
        await conn.execute(text("ANALYZE"))
    await engine.dispose()


async def _measure(url: str, root: Path, runs: int) -> dict[str, list[float]]:
    engine = create_engine(url, pool_size=4)
    clock = SystemClock()
    config = ServerConfig(data_dir=root, bucket_dir=root / "buckets")
    stores = open_stores(engine, clock, config, SecretBox(b"k" * 32))
    await stores.accounts.create_user(
        "bench-admin", KdfParams.new(), b"a" * 32, role=Role.SUPER_ADMIN
    )
    owner = await stores.accounts.authenticate_session(
        (
            await stores.accounts.login("bench-admin", b"a" * 32, source="b", admin_session=True)
        ).session_token,
        admin=True,
    )
    key = (await stores.api_keys.create(owner, name="bench", role=Role.SUPER_ADMIN)).key
    router = CommandRouter(LiveRegistry(), instance_id="bench")
    console = Console(
        accounts=stores.accounts, profiles=stores.profiles, policies=stores.policies,
        jobs=stores.jobs, buckets=stores.buckets, overview=stores.overview,
        directory=stores.directory,
        administration=Administration(
            stores.accounts, stores.profiles, stores.policies, stores.jobs, router,
            stores.buckets, api_keys=stores.api_keys,
        ),
        instance_id="bench", version="bench",
    )  # fmt: skip
    access = Access(
        stores.accounts, stores.api_keys, CookieCodec(b"c" * 32), clock,
        idle=timedelta(minutes=30), addresses=ClientAddresses(),
    )  # fmt: skip
    app = build_app(console, access, WebOptions())
    timings: dict[str, list[float]] = {}
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench"
    ) as http:
        for path in PAGES:
            await http.get(path, headers=headers)  # warm
            for _ in range(runs):
                started = time.perf_counter()
                reply = await http.get(path, headers=headers)
                timings.setdefault(path, []).append((time.perf_counter() - started) * 1000)
                assert reply.status_code == 200, (path, reply.status_code, reply.text[:300])
    await engine.dispose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--devices", type=int, default=2, help="devices per user")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="comet-console-bench-"))
    root.chmod(0o755)  # as root, PostgreSQL runs as the postgres user, who must enter it
    postgres = EmbeddedPostgres(root / "pg", fast=True)
    try:
        url = postgres.start()
        migrate(url)
        started = time.perf_counter()
        asyncio.run(_seed(url, args.users, args.devices, args.jobs))
        print(f"seeded {args.users} users, {args.users * args.devices} devices, "
              f"{args.jobs} jobs in {time.perf_counter() - started:.0f} s")  # fmt: skip
        timings = asyncio.run(_measure(url, root, args.runs))
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)
    rows = {p: {"median_ms": statistics.median(t), "max_ms": max(t)} for p, t in timings.items()}
    print(f"{'page':<28} {'median ms':>10} {'max ms':>8}")
    for path, row in rows.items():
        flag = "" if row["median_ms"] < 200 else "  over 200 ms"
        print(f"{path:<28} {row['median_ms']:>10.1f} {row['max_ms']:>8.1f}{flag}")
    if args.json:
        args.json.write_text(json.dumps({"scale": vars(args) | {"json": None}, "pages": rows}))


if __name__ == "__main__":
    main()
