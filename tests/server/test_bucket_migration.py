"""Migration 0009: buckets made before per-device credentials keep working for the
account's devices, and the old account-wide key is gone from every profile."""

from __future__ import annotations

import json

import psycopg
from alembic import command

from comet.server.store.database import alembic_config, migrate
from tests.fixtures.postgres import PostgresCluster

PROFILE = {
    "vaults": [
        {"vault_id": "v1", "name": "server", "comet": {"bucket_id": "b", "bucket_key": "sealed"}},
        {"vault_id": "v2", "name": "disk", "local": {"path": "/backups"}},
    ],
    "items": [],
}


def test_0009_drops_account_wide_bucket_keys_and_lets_buckets_outlive_accounts(
    postgres_cluster: PostgresCluster,
) -> None:
    url = postgres_cluster.empty_database()
    migrate(url, "0004")
    bucket_id = "00000000-0000-4000-8000-000000000001"
    PROFILE["vaults"][0]["comet"]["bucket_id"] = bucket_id  # type: ignore[index]
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO users (id, username, role, kdf, auth_hash, auth_salt, created_at,"
            " profile, profile_version) VALUES ('u1', 'alice', 1, '{}', 'h', 's', now(), %s, 7)",
            (json.dumps(PROFILE),),
        )
        conn.execute(
            "INSERT INTO buckets (id, user_id, key_hash, quota_bytes, used_bytes, created_at)"
            " VALUES (%s, 'u1', 'old-hash', 0, 42, now())",
            (bucket_id,),
        )
    command.upgrade(alembic_config(url), "0009")
    with psycopg.connect(url) as conn:
        profile, version = conn.execute("SELECT profile, profile_version FROM users").fetchone()  # type: ignore[misc]
        assert version == 7
        assert profile["vaults"][0]["comet"] == {"bucket_id": bucket_id}
        assert profile["vaults"][1] == PROFILE["vaults"][1]  # type: ignore[index]
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'buckets'"
            )
        }
        assert "key_hash" not in columns and "former_owner" in columns
        conn.execute("UPDATE buckets SET former_owner = 'alice'")
        conn.execute("DELETE FROM users")  # the bucket row survives its account
        assert conn.execute("SELECT user_id, used_bytes FROM buckets").fetchall() == [(None, 42)]
    command.downgrade(alembic_config(url), "0004")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM buckets").fetchone() == (0,)
    migrate(url)
