"""One-shot database tasks run from the command line: migrate, create the first admin.

They use the configured database, or the embedded one (started for the task and
stopped again unless a running server owns it)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from comet.agent.credentials import KdfParams, derive_login_secrets
from comet.server.clock import SystemClock
from comet.server.embedded_postgres import EmbeddedPostgres
from comet.server.errors import InvalidRequestError
from comet.server.store.accounts import AccountStore, LoginPolicy, Role, check_username
from comet.server.store.database import create_engine, migrate

MIN_PASSWORD = 8


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidRequestError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


@contextmanager
def database_url(data_dir: Path, database_url: str | None) -> Iterator[str]:
    if database_url:
        yield database_url
        return
    embedded = EmbeddedPostgres(data_dir)
    url = embedded.start()
    try:
        yield url
    finally:
        if not embedded.adopted:
            embedded.stop()


def migrate_only(data_dir: Path, url: str | None) -> None:
    with database_url(data_dir, url) as resolved:
        migrate(resolved)


def add_admin(data_dir: Path, url: str | None, username: str, password: str) -> None:
    check_username(username)
    check_password(password)
    kdf = KdfParams.new()
    secrets = derive_login_secrets(password, kdf)
    with database_url(data_dir, url) as resolved:
        migrate(resolved)
        asyncio.run(_create_admin(resolved, username, kdf, secrets.auth_key))


async def _create_admin(url: str, username: str, kdf: KdfParams, auth_key: bytes) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        accounts = AccountStore(engine, SystemClock(), LoginPolicy())
        await accounts.create_user(username, kdf, auth_key, role=Role.SUPER_ADMIN)
        await accounts.audit("comet-server", "user.add", username, details="add-admin")
    finally:
        await engine.dispose()
