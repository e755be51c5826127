"""The stored admin session of ``comet-admin`` and the client it opens."""

from __future__ import annotations

import base64
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comet.agent.credentials import KdfParams, derive_login_secrets
from comet.agent.transport import ServerTrust, sync_channel
from comet.server.passwords import kdf_from_json, kdf_to_json
from comet.v1 import admin_pb2_grpc, control_pb2


class AdminCliError(Exception):
    pass


@dataclass(frozen=True)
class AdminSession:
    server: str
    username: str
    token: str
    # https: the CA given at login, or the server certificate pinned then.
    trust: ServerTrust | None = None


def config_path() -> Path:
    env = os.environ.get("COMET_ADMIN_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "comet" / "admin.json"


def _read_document() -> dict[str, Any]:
    try:
        data = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_document(document: dict[str, Any]) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(document, f)


def pinned_certificate(server: str) -> bytes:
    """The certificate pinned for ``server`` at an earlier login (kept when the
    session is replaced, so a new login never trusts a changed one silently)."""
    pins = _read_document().get("pins") or {}
    value = pins.get(server) if isinstance(pins, dict) else None
    return base64.b64decode(value) if isinstance(value, str) else b""


def recorded_kdf(server: str, username: str) -> KdfParams | None:
    """The KDF parameters of this admin account at its last login from here."""
    kdfs = _read_document().get("kdf") or {}
    value = kdfs.get(f"{server} {username}") if isinstance(kdfs, dict) else None
    if not isinstance(value, dict):
        return None
    try:
        return kdf_from_json(value)
    except (KeyError, ValueError):
        return None


def save_session(session: AdminSession, *, kdf: KdfParams | None = None) -> None:
    previous = _read_document()
    document: dict[str, Any] = {
        "server": session.server,
        "username": session.username,
        "session_token": session.token,
        "pins": previous.get("pins") or {},
        "kdf": previous.get("kdf") or {},
    }
    if session.trust is not None and session.trust.pinned:
        document["pins"][session.server] = base64.b64encode(session.trust.root_pem).decode()
    if kdf is not None:
        document["kdf"][f"{session.server} {session.username}"] = kdf_to_json(kdf)
    if session.trust is not None:
        document["tls"] = {
            "root_pem": base64.b64encode(session.trust.root_pem).decode(),
            "pinned": session.trust.pinned,
            "name_override": session.trust.name_override,
        }
    _write_document(document)


def load_session() -> AdminSession:
    try:
        data = json.loads(config_path().read_text())
        tls = data.get("tls")
        trust = None
        if tls:
            trust = ServerTrust(
                base64.b64decode(tls["root_pem"]), bool(tls["pinned"]), tls["name_override"]
            )
        return AdminSession(data["server"], data["username"], data["session_token"], trust)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AdminCliError("not logged in: run 'comet-admin login' first") from e


def read_password() -> str:
    line = sys.stdin.readline()
    if not line:
        raise AdminCliError("--password-stdin: no password on standard input")
    return line.rstrip("\n")


class Admin:
    def __init__(self, session: AdminSession) -> None:
        self.session = session
        self.channel = sync_channel(session.server, trust=session.trust)
        self.stub = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {session.token}"),)


def derive_for_new_password(password: str) -> tuple[KdfParams, bytes]:
    if len(password) < 8:
        raise AdminCliError("a password needs at least 8 characters")
    kdf = KdfParams.new()
    return kdf, derive_login_secrets(password, kdf).auth_key


def kdf_proto(kdf: KdfParams) -> control_pb2.KdfParams:
    return control_pb2.KdfParams(
        algorithm=kdf.algorithm, salt=kdf.salt, log2_n=kdf.log2_n, r=kdf.r, p=kdf.p
    )
