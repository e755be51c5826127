"""Typed server configuration. The only module that reads the environment."""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str = field(repr=False)


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    listen: str = "127.0.0.1:8060"
    database_url: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # TLS with no certificate given: a self-signed one in DATA_DIR/tls is used.
    tls: bool = False
    heartbeat_seconds: int = 15
    session_hours: int = 12
    # Failed logins allowed per account (and per source address) in the window.
    max_failed_logins: int = 5
    failed_login_window_seconds: int = 900
    # After those, each attempt waits this long after the last failure, doubling.
    login_backoff_seconds: int = 30
    # Reverse proxies (CIDRs) whose X-Forwarded-For / X-Real-IP header is believed.
    trusted_proxies: tuple[str, ...] = ()
    # Audit events are deleted once older than this.
    audit_retention_days: int = 365
    # The key that encrypts secrets at rest; default ``secret.key`` in the data dir.
    # Instances sharing one database must share this file.
    secret_key_file: Path | None = None
    # A running job with no report for this long becomes Abandoned.
    job_timeout_seconds: int = 600
    job_log_retention_days: int = 90
    # A scheduled run counts as missed when no job started this long after its time.
    missed_grace_seconds: int = 1800
    maintenance_seconds: int = 30
    # Where "Comet Server" vault buckets keep their objects; default DATA_DIR/buckets.
    bucket_dir: Path | None = None
    # Or an S3-compatible object store shared by every instance: s3://BUCKET/PREFIX at
    # ``s3_endpoint`` (None: AWS). Its credentials come from ``s3_credentials``.
    bucket_store: str | None = None
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_credentials: S3Credentials | None = None
    # Quota of new buckets, and the most a device may ask for; 0 = unlimited.
    bucket_quota_bytes: int = 0
    # What all of an account's buckets may hold together, unless its policy says
    # otherwise (storage_quota_bytes); 0 = unlimited. Default 1 TiB.
    account_quota_bytes: int = 1 << 40
    # How many buckets an account may have, unless its policy says otherwise
    # (max_buckets); 0 = unlimited.
    max_buckets: int = 10
    # Prometheus metrics at http://HOST:PORT/metrics; None: not served.
    metrics_listen: str | None = None
    # How often the metrics read from the database (jobs, queues, last backups) are
    # refreshed: counting jobs reads the whole table.
    metrics_refresh_seconds: float = 15.0
    # Notifications: how often the queue and events are looked at, and the first and
    # longest wait before a failed mail or webhook call is retried (doubling between).
    notify_poll_seconds: float = 5.0
    notify_retry_seconds: float = 30.0
    notify_max_retry_seconds: float = 3600.0
    # A device with schedules and no good backup for this long is overdue.
    overdue_hours: float = 26.0
    # The web console and HTTP API at HOST:PORT (https when the server has TLS);
    # None: not served.
    web_listen: str | None = None
    # A console session with no request for this long ends.
    web_idle_minutes: int = 30
    # Secure cookies over plain http: the console is behind a TLS-terminating proxy.
    web_secure_cookies: bool = False

    @property
    def secret_key_path(self) -> Path:
        return self.secret_key_file or self.data_dir / "secret.key"

    @property
    def bucket_root(self) -> Path:
        return self.bucket_dir or self.data_dir / "buckets"


def default_data_dir() -> Path:
    env = os.environ.get("COMET_SERVER_DATA_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/comet-server")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "comet-server"


def secret_key_file_from_env() -> Path | None:
    env = os.environ.get("COMET_SERVER_SECRET_KEY_FILE")
    return Path(env) if env else None


def s3_credentials(file: Path | None) -> S3Credentials | None:
    """The object store's key, never from argv: ``file`` (an AWS-style credentials file,
    its ``[default]`` section, or ``$COMET_S3_CREDENTIALS_FILE``), else
    ``$COMET_S3_ACCESS_KEY_ID`` / ``$COMET_S3_SECRET_ACCESS_KEY``, else None (boto3's
    own chain: ``AWS_*`` variables, instance roles, Kubernetes web identity)."""
    path = file or (Path(p) if (p := os.environ.get("COMET_S3_CREDENTIALS_FILE")) else None)
    if path is not None:
        parser = configparser.ConfigParser()
        if not parser.read(path):
            raise ValueError(f"cannot read the S3 credentials file {path}")
        section = parser["default"] if parser.has_section("default") else parser.defaults()
        try:
            return S3Credentials(
                section["aws_access_key_id"].strip(), section["aws_secret_access_key"].strip()
            )
        except KeyError as e:
            raise ValueError(
                f"{path}: [default] needs aws_access_key_id and aws_secret_access_key"
            ) from e
    access = os.environ.get("COMET_S3_ACCESS_KEY_ID")
    secret = os.environ.get("COMET_S3_SECRET_ACCESS_KEY")
    if access and secret:
        return S3Credentials(access, secret)
    return None
