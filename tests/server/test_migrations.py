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
    expected = {"alembic_version", "users", "devices", "sessions", "audit_events",
                "server_settings"}
    assert expected <= tables(url)
    migrate(url)  # idempotent at head
    from alembic import command

    from comet.server.store.database import alembic_config

    command.downgrade(alembic_config(url), "base")
    assert tables(url) == {"alembic_version"}
    migrate(url)
    assert expected <= tables(url)
