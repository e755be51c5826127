"""The embedded PostgreSQL default: start, stop, adopt a stale cluster, clear errors."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from comet.server.embedded_postgres import EmbeddedPostgres, PostgresBinaries
from comet.server.errors import DatabaseSetupError


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="comet-epg-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_initialises_starts_writes_url_and_stops(data_dir: Path) -> None:
    pg = EmbeddedPostgres(data_dir, fast=True)
    url = pg.start()
    try:
        assert (data_dir / "database.url").read_text().strip() == url
        assert oct((data_dir / "database.url").stat().st_mode & 0o777) == "0o600"
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("comet",)
    finally:
        pg.stop()
    assert not pg.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def test_a_cluster_left_running_is_adopted_not_started_twice(data_dir: Path) -> None:
    crashed = EmbeddedPostgres(data_dir, fast=True)
    url = crashed.start()  # and never stopped, as after a SIGKILL of the server
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
        again = EmbeddedPostgres(data_dir, fast=True)
        assert again.start() == url
        assert again.adopted
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)
        again.stop()
        assert not crashed.is_running()
        # A later start brings the same data back.
        third = EmbeddedPostgres(data_dir, fast=True)
        third.start()
        with psycopg.connect(third.url) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)
        third.stop()
    finally:
        crashed.stop()


def test_missing_server_binaries_name_the_package_to_install(tmp_path: Path) -> None:
    with pytest.raises(DatabaseSetupError, match="apt-get install -y postgresql"):
        PostgresBinaries.find(lib_root=str(tmp_path), path=str(tmp_path))


def test_a_non_cluster_directory_in_the_way_is_not_touched(data_dir: Path) -> None:
    (data_dir / "postgres").mkdir()
    (data_dir / "postgres" / "notes.txt").write_text("mine")
    with pytest.raises(DatabaseSetupError, match="holds no PostgreSQL cluster"):
        EmbeddedPostgres(data_dir, fast=True).start()
    assert (data_dir / "postgres" / "notes.txt").read_text() == "mine"
