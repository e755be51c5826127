"""The console's user and device searches (``q``) mean the same with and without the
trigram indexes of migration 0019: a case-insensitive substring of the user's name,
the device's name or its id, with ``%``, ``_`` and ``\\`` taken literally."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from comet.server.secret_box import SecretBox
from comet.server.store.accounts import AccountStore, LoginPolicy
from comet.server.store.directory import Directory
from tests.server.conftest import FakeClock

pytestmark = pytest.mark.timeout(60)

USERS = ["alice", "Bob_Smith", "bobxsmith", "pct%user", "pctxuser", "back\\slash", "backxslash"]
# (device id, owner, name)
DEVICES = [
    ("dev-aaa-1", "alice", "Alice's LAPTOP"),
    ("dev-bbb-2", "Bob_Smith", "desk_1"),
    ("dev-ccc-3", "bobxsmith", "deskx1"),
    ("dev-ddd-4", "pct%user", "100% disk"),
    ("dev-eee-5", "pctxuser", "100x disk"),
    ("dev-fff-6", "back\\slash", "c:\\users"),
    ("dev-ggg-7", "backxslash", "c:xusers"),
]
SEARCHES = {
    # search: (users found, devices found)
    "BOB_": (["Bob_Smith"], ["dev-bbb-2"]),
    "b_s": (["Bob_Smith"], ["dev-bbb-2"]),
    "ct%u": (["pct%user"], ["dev-ddd-4"]),
    "0% d": ([], ["dev-ddd-4"]),
    "k\\s": (["back\\slash"], ["dev-fff-6"]),
    ":\\us": ([], ["dev-fff-6"]),
    "laptop": ([], ["dev-aaa-1"]),
    "ALI": (["alice"], ["dev-aaa-1"]),
    "CCC-3": ([], ["dev-ccc-3"]),  # the device id
    "sk_1": ([], ["dev-bbb-2"]),
    "%": (["pct%user"], ["dev-ddd-4"]),
    "_": (["Bob_Smith"], ["dev-bbb-2"]),
    "zz": ([], []),
}


async def _seed(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for n, name in enumerate(USERS):
            await conn.execute(
                text(
                    "INSERT INTO users (id, username, role, kdf, auth_hash, auth_salt,"
                    " created_at, profile, profile_version)"
                    " VALUES (:id, :name, 1, '{}', 'h', 's', now(), '{}', 1)"
                ),
                {"id": f"u{n}", "name": name},
            )
        for n, (device, owner, name) in enumerate(DEVICES):
            await conn.execute(
                text(
                    "INSERT INTO devices (id, user_id, name, os, arch, timezone,"
                    " client_version, registered_at, token_hash)"
                    " SELECT :id, u.id, :name, '', '', '', '', now() + :n * interval '1 s', :id"
                    " FROM users u WHERE u.username = :owner"
                ),
                {"id": device, "name": name, "owner": owner, "n": n},
            )


def _directory(engine: AsyncEngine) -> Directory:
    accounts = AccountStore(engine, FakeClock(), LoginPolicy(), box=SecretBox(b"k" * 32))
    return Directory(engine, accounts)


async def _results(directory: Directory) -> dict[str, tuple[list[str], list[str]]]:
    out = {}
    for search in SEARCHES:
        users, _ = await directory.users(search=search)
        devices, total = await directory.devices(search=search)
        assert total == len(devices)
        out[search] = (
            sorted(u.username for u in users),
            sorted(d.device_id for d in devices),
        )
    return out


async def test_search_means_the_same_with_and_without_trigram_indexes(
    engine: AsyncEngine, index_only: AsyncEngine
) -> None:
    await _seed(engine)
    async with index_only.connect() as conn:
        plan = "\n".join(
            (
                await conn.execute(
                    text("EXPLAIN SELECT id FROM devices WHERE name ILIKE :p ESCAPE '\\'"),
                    {"p": "%k\\_1%"},
                )
            ).scalars()
        )
    assert "ix_devices_name_trgm" in plan  # migration 0019 made it, and it serves ILIKE
    assert await _results(_directory(index_only)) == SEARCHES

    # A PostgreSQL without pg_trgm: no indexes, the same answers from the tables.
    async with engine.begin() as conn:
        for name in ("ix_devices_id_trgm", "ix_devices_name_trgm", "ix_users_username_trgm"):
            await conn.execute(text(f"DROP INDEX {name}"))
    assert await _results(_directory(engine)) == SEARCHES
