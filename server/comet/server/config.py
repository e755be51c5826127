"""Typed server configuration. The only module that reads the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    listen: str = "127.0.0.1:8060"
    database_url: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    heartbeat_seconds: int = 15
    session_hours: int = 12
    # Failed logins allowed per account (and per source address) in the window.
    max_failed_logins: int = 5
    failed_login_window_seconds: int = 900


def default_data_dir() -> Path:
    env = os.environ.get("COMET_SERVER_DATA_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/comet-server")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "comet-server"
