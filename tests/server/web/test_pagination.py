"""Lists are paged in the database at their edges: past the last page, page 0, page
sizes out of range, a search with LIKE wildcards taken literally, device counts of
the page's users only, buckets (largest first on the dashboard) and the job history's
keyset pages when jobs share a start time."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from comet.server.store.accounts import Role
from comet.server.store.jobs import JobQuery
from tests.server.web.conftest import Web

pytestmark = pytest.mark.timeout(60)


async def seed(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (id, username, role, kdf, auth_hash, auth_salt, created_at,"
                " profile, profile_version) SELECT 'u' || n, name, 1, '{}', 'h', 's', now(),"
                " '{}', 1 FROM (SELECT n, 'p' || lpad(n::text, 3, '0') AS name"
                " FROM generate_series(1, 120) n UNION ALL VALUES (121, 'a_b'), (122, 'axb')) x"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO devices (id, user_id, name, os, arch, timezone, client_version,"
                " registered_at, token_hash, revoked_at) VALUES"
                " ('d1', 'u1', 'one', '', '', '', '', now(), 't1', NULL),"
                " ('d2', 'u1', 'two', '', '', '', '', now(), 't2', NULL),"
                " ('d3', 'u1', 'gone', '', '', '', '', now(), 't3', now())"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO buckets (id, user_id, former_owner, quota_bytes, used_bytes,"
                " created_at) SELECT gen_random_uuid()::text, 'u' || n, '', 0, n * 1000,"
                " now() + n * interval '1 second' FROM generate_series(1, 60) n"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO audit_events (time, actor, action, target, source_address, success,"
                " details) SELECT now(), 'root', 'paged', 't' || n, '', true, ''"
                " FROM generate_series(1, 250) n"
            )
        )
        # Five jobs started at the same instant: keyset pages break the tie by id.
        when = datetime(2026, 1, 5, tzinfo=UTC)
        for n in range(5):
            await conn.execute(
                text("INSERT INTO job_ids (job_id, user_id, started_at) VALUES (:j, 'u2', :t)"),
                {"j": f"t{n}", "t": when},
            )
            await conn.execute(
                text(
                    "INSERT INTO jobs (job_id, user_id, device_id, classification, status,"
                    " started_at, last_report_at) VALUES (:j, 'u2', 'd9', 4001, 5000, :t, :t)"
                ),
                {"j": f"t{n}", "t": when},
            )


async def test_lists_page_at_their_edges(web: Web, engine: AsyncEngine) -> None:
    await web.add_user("root", Role.SUPER_ADMIN)
    headers = {"authorization": f"Bearer {await web.api_key('root', Role.SUPER_ADMIN)}"}
    await seed(engine)
    async with web.client() as http:

        async def get(path: str) -> Any:
            reply = await http.get(path, headers=headers)
            assert reply.status_code == 200, reply.text
            return reply.json()

        names: list[str] = []
        for page in (1, 2, 3):
            body = await get(f"/api/v1/users?page={page}")
            assert (body["page"], body["pages"], body["total"]) == (page, 3, 123)
            names += [u["username"] for u in body["items"]]
        assert names == sorted(names) and len(set(names)) == 123
        past = await get("/api/v1/users?page=4")
        assert (past["items"], past["page"], past["pages"]) == ([], 4, 3)
        assert (await get("/api/v1/users?page=0"))["page"] == 1
        assert len((await get("/api/v1/users?per_page=100000"))["items"]) == 123
        one = await get("/api/v1/users?per_page=0")
        assert (len(one["items"]), one["pages"]) == (1, 123)
        found = await get("/api/v1/users?q=a_b")
        assert [u["username"] for u in found["items"]] == ["a_b"]
        p001 = await get("/api/v1/users?q=p001")
        assert [u["device_count"] for u in p001["items"]] == [2]

        buckets = await get("/api/v1/buckets?page=2")
        assert (len(buckets["items"]), buckets["total"], buckets["pages"]) == (10, 60, 2)
        dashboard = await get("/api/v1/dashboard")
        used = [b["used_bytes"] for b in dashboard["buckets"]]
        assert used == [60_000 - 1000 * n for n in range(10)]
        assert dashboard["buckets_total"] == 60
        page = await http.get("/buckets?page=2", headers=headers)
        assert "60 bucket(s) · page 2 of 2" in page.text

        audit = await http.get("/audit?action=paged", headers=headers)
        older = re.search(r'href="(/audit\?action=paged&amp;before=\d+)"', audit.text)
        assert older and audit.text.count("<tr><td>") == 200
        rest = await http.get(older.group(1).replace("&amp;", "&"), headers=headers)
        assert rest.text.count("<tr><td>") == 50 and "older events" not in rest.text
        first = await get("/api/v1/audit?action=paged&limit=100")
        more = await get(f"/api/v1/audit?action=paged&before={first[-1]['event_id']}")
        assert [e["target"] for e in more][:1] == ["t150"] and len(more) == 150

    seen: list[str] = []
    token = ""
    while True:
        jobs = await web.stores.jobs.find(replace(JobQuery(page_size=2), page_token=token))
        seen += [j.job_id for j in jobs.jobs]
        token = jobs.next_page_token
        if not token:
            break
    assert seen == ["t4", "t3", "t2", "t1", "t0"]


async def test_csv_export_streams_keyset_batches(web: Web, engine: AsyncEngine) -> None:
    """The export reads 100 rows, then the rest from the first batch's last (keyset):
    600 jobs (some sharing a start time) come out once each, newest first, cut at
    ``limit``."""
    await web.add_user("root", Role.SUPER_ADMIN)
    await web.add_user("u2")
    headers = {"authorization": f"Bearer {await web.api_key('root', Role.SUPER_ADMIN)}"}
    async with engine.begin() as conn:
        for table in (
            "job_ids (job_id, user_id, started_at)",
            "jobs (job_id, user_id, device_id, classification, status, started_at, last_report_at)",
        ):
            values = (
                "'c' || lpad(n::text, 4, '0'), u.id"
                + (", 'd9', 4001, 5000" if table.startswith("jobs") else "")
                + ", timestamptz '2026-01-05' - (n / 3) * interval '1 minute'"
                + (", now()" if table.startswith("jobs") else "")
            )
            await conn.execute(
                text(
                    f"INSERT INTO {table} SELECT {values} FROM generate_series(1, 600) n,"
                    " users u WHERE u.username = 'u2'"
                )
            )
    async with web.client() as http:
        full = await http.get("/api/v1/jobs.csv?user=u2", headers=headers)
        assert full.status_code == 200 and full.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(full.text)))
        assert rows[0] == {
            "job_id": "c0002", "username": "u2", "device_id": "d9", "classification": "BACKUP",
            "status": "SUCCESS", "started_at": "2026-01-05T00:00:00+00:00", "ended_at": "",
            "item_id": "", "vault_id": "", "bytes": "0", "files": "0", "uploaded_bytes": "0",
            "error_message": "",
        }  # fmt: skip
        ids = [r["job_id"] for r in rows]
        # Newest first; a tie on the start time broken by the id, descending.
        assert ids == [f"c{n:04d}" for n in sorted(range(1, 601), key=lambda n: (n // 3, -n))]
        cut = await http.get("/api/v1/jobs.csv?user=u2&limit=520", headers=headers)
        assert [r["job_id"] for r in csv.DictReader(io.StringIO(cut.text))] == ids[:520]
        missing = await http.get("/api/v1/jobs.csv?user=nobody", headers=headers)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
