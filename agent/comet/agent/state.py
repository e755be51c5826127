"""The agent's durable local state: an SQLite database in the state dir (mode 0600).

Holds the login (server, username, device credential, the password-derived
wrapping key) and survives restarts. Later tables (jobs, outbox) live here too.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from comet.agent.transport import ServerTrust, remember_trust

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


@dataclass(frozen=True)
class LoginState:
    server: str = ""
    username: str = ""
    device_id: str = ""
    device_token: str = ""
    wrap_key: bytes = b""
    device_name: str = ""
    locked: bool = False
    # Set when the server ended the login (device revoked, remote disconnect).
    last_error: str = ""
    # https only: the CA given at login, or the server certificate pinned then.
    tls_root_pem: bytes = b""
    tls_pinned: bool = False
    tls_name_override: str = ""

    @property
    def logged_in(self) -> bool:
        return bool(self.server and self.device_token)

    @property
    def trust(self) -> ServerTrust | None:
        if not self.tls_root_pem:
            return None
        return ServerTrust(self.tls_root_pem, self.tls_pinned, self.tls_name_override)


class AgentState:
    """Thread-safe access to the state database."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(state_dir, 0o700)
        path = state_dir / "agent.db"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _get(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def _text(self, key: str) -> str:
        value = self._get(key)
        return "" if value is None else value.decode()

    def load_login(self) -> LoginState:
        with self._lock:
            login = LoginState(
                server=self._text("server"),
                username=self._text("username"),
                device_id=self._text("device_id"),
                device_token=self._text("device_token"),
                wrap_key=self._get("wrap_key") or b"",
                device_name=self._text("device_name"),
                locked=self._text("locked") == "1",
                last_error=self._text("last_error"),
                tls_root_pem=self._get("tls_root_pem") or b"",
                tls_pinned=self._text("tls_pinned") == "1",
                tls_name_override=self._text("tls_name_override"),
            )
        _share_trust(login)
        return login

    def save_login(self, login: LoginState) -> None:
        values: dict[str, bytes] = {
            "server": login.server.encode(),
            "username": login.username.encode(),
            "device_id": login.device_id.encode(),
            "device_token": login.device_token.encode(),
            "wrap_key": login.wrap_key,
            "device_name": login.device_name.encode(),
            "locked": b"1" if login.locked else b"0",
            "last_error": login.last_error.encode(),
            "tls_root_pem": login.tls_root_pem,
            "tls_pinned": b"1" if login.tls_pinned else b"0",
            "tls_name_override": login.tls_name_override.encode(),
        }
        with self._lock:
            self._db.execute("BEGIN")
            for key, value in values.items():
                self._db.execute(
                    "INSERT INTO settings (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            self._db.execute("COMMIT")
        _share_trust(login)

    def get_blob(self, key: str) -> bytes | None:
        with self._lock:
            return self._get(f"blob:{key}")

    def put_blob(self, key: str, value: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (f"blob:{key}", value),
            )

    def logout(self, *, error: str = "") -> LoginState:
        """Forget the login; the device id is kept so the same user logging in
        again on this machine keeps its registration."""
        current = self.load_login()
        cleared = replace(
            LoginState(),
            device_id=current.device_id,
            device_name=current.device_name,
            last_error=error,
        )
        self.save_login(cleared)
        return cleared


def _share_trust(login: LoginState) -> None:
    """Every channel to the logged-in server (live connection, outbox, profile,
    buckets) uses the trust recorded at login."""
    if login.server:
        remember_trust(login.server, login.trust)
