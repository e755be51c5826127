"""Alembic migrations against a real PostgreSQL: up from empty, down and up again."""

from __future__ import annotations

import psycopg

from comet.server.store.database import migrate
from tests.fixtures.postgres import PostgresCluster


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_upgrade_from_an_empty_database_then_downgrade_and_upgrade_again(
    postgres_cluster: PostgresCluster,
) -> None:
    url = postgres_cluster.empty_database()
    assert tables(url) == set()
    migrate(url)
    expected = {
        "alembic_version",
        "users",
        "devices",
        "sessions",
        "audit_events",
        "server_settings",
    }
    assert expected <= tables(url)
    migrate(url)  # idempotent at head
    from alembic import command

    from comet.server.store.database import alembic_config

    command.downgrade(alembic_config(url), "base")
    assert tables(url) == {"alembic_version"}
    migrate(url)
    assert expected <= tables(url)


def test_upgrade_from_0001_with_data_to_head_and_back(postgres_cluster: PostgresCluster) -> None:
    from alembic import command

    from comet.server.store.database import alembic_config

    url = postgres_cluster.empty_database()
    migrate(url, "0001")
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO users (id, username, role, kdf, auth_hash, auth_salt, created_at,"
            " profile, profile_version, policy_id) VALUES ('u1', 'alice', 1, '{}', 'h', 's',"
            ' now(), \'{"items": [{"item_id": "i1"}]}\', 3, \'stale-policy\')'
        )
        conn.execute(
            "INSERT INTO devices (id, user_id, name, os, arch, timezone, client_version,"
            " registered_at, token_hash) VALUES ('d1', 'u1', 'laptop', '', '', '', '', now(), 't')"
        )
    migrate(url)
    assert {"jobs", "job_log", "policies"} <= tables(url)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT username, profile_version, profile::text, policy_id, totp_pending_secret"
            " FROM users"
        ).fetchone()
        assert row == ("alice", 3, '{"items": [{"item_id": "i1"}]}', None, None)
        conn.execute("INSERT INTO policies VALUES ('p1', 'base', '{}', true, 1, now())")
        conn.execute("UPDATE users SET policy_id = 'p1'")
        # Job ids are unique there, and it knows each job's month.
        conn.execute("INSERT INTO job_ids VALUES ('j1', 'u1', now())")
        conn.execute(
            "INSERT INTO jobs (job_id, user_id, device_id, classification, status, started_at,"
            " last_report_at) VALUES ('j1', 'u1', 'd1', 4001, 5000, now(), now())"
        )
        conn.execute("INSERT INTO job_log VALUES ('j1', 1, now(), 2, 'hello')")
    command.downgrade(alembic_config(url), "0001")
    assert "jobs" not in tables(url) and "policies" not in tables(url)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT username, profile_version FROM users").fetchone() == (
            "alice",
            3,
        )
        assert conn.execute("SELECT name FROM devices").fetchone() == ("laptop",)
    migrate(url)
    assert "jobs" in tables(url)
