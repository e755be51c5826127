"""Runs a private PostgreSQL cluster inside the server's data directory.

Uses the system's PostgreSQL server binaries (Debian: ``/usr/lib/postgresql/<ver>/bin``).
``initdb`` refuses to run as root, so as root every PostgreSQL command runs as the
``postgres`` OS user on a directory that user owns. The cluster listens on 127.0.0.1
only, on a free port chosen at each start, with a generated password (scram).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from comet.server.errors import DatabaseSetupError

DB_NAME = "comet"
DB_USER = "comet"
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found: install the Debian "
    "package 'postgresql' (apt-get install -y postgresql), or pass --database-url "
    "to use an existing PostgreSQL server"
)


@dataclass(frozen=True)
class PostgresBinaries:
    initdb: Path
    pg_ctl: Path

    @classmethod
    def find(
        cls, *, lib_root: str = "/usr/lib/postgresql", path: str | None = None
    ) -> PostgresBinaries:
        candidates = sorted(
            glob.glob(f"{lib_root}/*/bin"),
            key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
            reverse=True,
        )
        for directory in candidates:
            initdb, pg_ctl = Path(directory, "initdb"), Path(directory, "pg_ctl")
            if initdb.exists() and pg_ctl.exists():
                return cls(initdb, pg_ctl)
        found_initdb = shutil.which("initdb", path=path)
        found_pg_ctl = shutil.which("pg_ctl", path=path)
        if found_initdb and found_pg_ctl:
            return cls(Path(found_initdb), Path(found_pg_ctl))
        raise DatabaseSetupError(INSTALL_HINT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedPostgres:
    """One private cluster in ``data_dir/postgres``.

    ``start()`` initialises the cluster on first use and starts it; a cluster left
    running by a crashed server is adopted rather than started twice. ``stop()``
    shuts down only a cluster this object started or adopted.
    """

    def __init__(self, data_dir: Path, *, fast: bool = False) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "postgres"
        self.password_file = data_dir / "postgres.password"
        self.url_file = data_dir / "database.url"
        self._fast = fast  # tests: no fsync, for speed
        self._binaries = PostgresBinaries.find()
        self._run_as = "postgres" if os.geteuid() == 0 else None
        self._running = False
        self.port = 0
        # True when start() found a cluster already running (left by a crashed
        # server, or owned by a server that is running now).
        self.adopted = False

    # -------------------------------------------------------------- public

    @property
    def url(self) -> str:
        """A libpq URL usable by psql and by a second server (``--database-url``)."""
        password = self.password_file.read_text().strip()
        return f"postgresql://{DB_USER}:{password}@127.0.0.1:{self.port}/{DB_NAME}"

    def start(self) -> str:
        """Initialise if needed, start (or adopt) the cluster, create the database,
        write ``database.url`` and return the URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        running_port = self._running_port()
        if running_port is not None:
            self.port = running_port
            self.adopted = True
        else:
            self._start_cluster()
        self._running = True
        self._create_database()
        self._write_private(self.url_file, self.url + "\n")
        return self.url

    def stop(self) -> None:
        if not self._running:
            return
        if self._running_port() is None:  # someone else stopped it already
            self._running = False
            return
        self._run([str(self._binaries.pg_ctl), "stop", "-D", str(self.pgdata), "-m", "fast", "-w"])
        self._running = False

    def is_running(self) -> bool:
        return self._running_port() is not None

    def restart(self) -> None:
        """Start the cluster again after it stopped on its own (it crashed or was
        killed), on the same port so the URL the server holds stays valid."""
        if self.port == 0:
            raise DatabaseSetupError("the embedded PostgreSQL was never started")
        self._start_cluster(self.port)
        self._running = True

    # -------------------------------------------------------------- steps

    def _initdb(self) -> None:
        self._check_reachable()
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise DatabaseSetupError(
                f"{self.pgdata} exists but holds no PostgreSQL cluster; move it away "
                "or choose another --data-dir"
            )
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        password = secrets.token_urlsafe(24)
        self._write_private(self.password_file, password + "\n")
        pwfile = self.data_dir / ".initdb-password"
        pwfile.write_text(password + "\n")
        self._chown(self.pgdata)
        self._chown(pwfile)
        args = [
            str(self._binaries.initdb),
            "-D",
            str(self.pgdata),
            "-U",
            DB_USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
        ]
        if self._fast:
            args.append("--no-sync")
        try:
            self._run(args)
        finally:
            pwfile.unlink(missing_ok=True)

    def _start_cluster(self, port: int = 0) -> None:
        self.port = port or free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            "-c unix_socket_directories='' -c max_connections=200"
        )
        if self._fast:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        log = self.pgdata / "server.log"
        self._run(
            [
                str(self._binaries.pg_ctl),
                "start",
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                "60",
                "-l",
                str(log),
                "-o",
                options,
            ],
            failure_log=log,
        )

    def _create_database(self) -> None:
        import psycopg

        password = self.password_file.read_text().strip()
        conninfo = f"host=127.0.0.1 port={self.port} user={DB_USER} password={password}"
        try:
            with psycopg.connect(conninfo + " dbname=postgres", autocommit=True) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)
                ).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{DB_NAME}"')
        except psycopg.Error as e:
            raise DatabaseSetupError(f"cannot prepare the embedded database: {e}") from e

    # -------------------------------------------------------------- helpers

    def _running_port(self) -> int | None:
        """The port of a cluster already running on this data dir, if any."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if len(lines) < 4:
            return None
        try:
            pid, port = int(lines[0]), int(lines[3])
        except ValueError:
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # stale pid file: postgres itself removes it at start
        except PermissionError:
            pass  # alive, owned by the postgres user
        status = subprocess.run(
            self._as_user([str(self._binaries.pg_ctl), "status", "-D", str(self.pgdata)]),
            capture_output=True,
            text=True,
            check=False,
        )
        return port if status.returncode == 0 else None

    def _check_reachable(self) -> None:
        """As root, the postgres user must be able to enter the data dir."""
        if self._run_as is None:
            return
        if not self._user_can(["test", "-x", str(self.data_dir)]):
            with contextlib.suppress(OSError):
                os.chmod(self.data_dir, os.stat(self.data_dir).st_mode | 0o011)
        if not self._user_can(["test", "-x", str(self.data_dir)]):
            raise DatabaseSetupError(
                f"the 'postgres' OS user cannot enter {self.data_dir}: choose a "
                "--data-dir whose parent directories it may enter (for example under "
                "/var/lib or /srv), or pass --database-url"
            )

    def _user_can(self, args: list[str]) -> bool:
        probe = subprocess.run(self._as_user(args), capture_output=True, check=False)
        return probe.returncode == 0

    def _chown(self, path: Path, *, recursive: bool = False) -> None:
        if self._run_as is None:
            return
        entry = pwd.getpwnam(self._run_as)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        if recursive:
            for root, dirs, files in os.walk(path):
                for name in dirs + files:
                    os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)

    def _as_user(self, args: list[str]) -> list[str]:
        if self._run_as is None:
            return args
        return ["runuser", "-u", self._run_as, "--", *args]

    def _run(self, args: list[str], *, failure_log: Path | None = None) -> None:
        result = subprocess.run(
            self._as_user(args), capture_output=True, text=True, check=False, cwd="/"
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            if failure_log is not None:
                with contextlib.suppress(OSError):
                    detail += "\n" + failure_log.read_text()[-2000:]
            raise DatabaseSetupError(f"{Path(args[0]).name} failed: {detail}")

    @staticmethod
    def _write_private(path: Path, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
