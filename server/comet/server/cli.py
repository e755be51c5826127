"""``comet-server``: serve, migrate, add-admin."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
from dataclasses import replace
from pathlib import Path

from comet.agent.errors import os_error_sentence
from comet.agent.transport import certificate_fingerprint
from comet.server.buckets.s3 import parse_store_url
from comet.server.config import (
    S3Credentials,
    ServerConfig,
    default_data_dir,
    s3_credentials,
    secret_key_file_from_env,
)
from comet.server.errors import ServerError
from comet.server.rpc.client_address import parse_networks
from comet.server.tls import certificate_names, ensure_self_signed


def _s3_credentials(args: argparse.Namespace) -> S3Credentials | None:
    if not args.bucket_store:
        return None
    try:
        parse_store_url(args.bucket_store)
        return s3_credentials(args.s3_credentials_file)
    except ValueError as e:
        raise ServerError(f"--bucket-store: {e}") from e


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="comet-server", description="The Comet Server.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server in the foreground")
    _add_db_args(serve)
    serve.add_argument(
        "--listen",
        default="127.0.0.1:8060",
        help="HOST:PORT to listen on, or http://HOST:PORT/ or https://HOST:PORT/",
    )
    serve.add_argument(
        "--tls",
        action="store_true",
        help="serve https; without --tls-cert a self-signed certificate in DATA_DIR/tls is used",
    )
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate (enables https)")
    serve.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    serve.add_argument(
        "--insecure-plaintext",
        action="store_true",
        help="allow plaintext gRPC on a non-loopback address (only behind a proxy that "
        "terminates TLS on a network nobody else can reach)",
    )
    serve.add_argument(
        "--heartbeat-seconds", type=int, default=15, help="live-connection heartbeat interval"
    )
    serve.add_argument(
        "--secret-key-file",
        type=Path,
        default=None,
        help="key that encrypts secrets at rest (default: $COMET_SERVER_SECRET_KEY_FILE, "
        "else DATA_DIR/secret.key, created on first start); every instance sharing a "
        "database needs the same key",
    )
    serve.add_argument(
        "--job-timeout-seconds",
        type=int,
        default=600,
        help="a running job with no report for this long becomes Abandoned",
    )
    serve.add_argument(
        "--job-log-retention-days", type=int, default=90, help="job log lines kept this long"
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="a reverse proxy (address or CIDR network) whose X-Forwarded-For / X-Real-IP "
        "header names the client; repeatable. Without it the peer address is used",
    )
    serve.add_argument(
        "--audit-retention-days",
        type=int,
        default=365,
        help="audit events older than this are deleted",
    )

    serve.add_argument(
        "--bucket-dir",
        type=Path,
        default=None,
        help="where Comet Server vault buckets keep their objects (default: DATA_DIR/buckets)",
    )
    serve.add_argument(
        "--bucket-store",
        default=None,
        metavar="s3://BUCKET/PREFIX",
        help="keep bucket objects in an S3-compatible object store shared by every instance"
        " instead of --bucket-dir; credentials from --s3-credentials-file,"
        " $COMET_S3_CREDENTIALS_FILE, $COMET_S3_ACCESS_KEY_ID/$COMET_S3_SECRET_ACCESS_KEY,"
        " or the AWS default chain",
    )
    serve.add_argument("--s3-endpoint", default=None, metavar="URL", help="the object store's URL")
    serve.add_argument("--s3-region", default="us-east-1", help="the object store's region")
    serve.add_argument(
        "--s3-credentials-file",
        type=Path,
        default=None,
        help="AWS-style credentials file ([default] aws_access_key_id, aws_secret_access_key)",
    )
    serve.add_argument(
        "--bucket-quota-bytes",
        type=int,
        default=0,
        help="quota of each new bucket, and the most a device may ask for (0 = unlimited)",
    )
    serve.add_argument(
        "--account-quota-bytes",
        type=int,
        default=1 << 40,
        help="bytes all of an account's buckets may hold together unless its policy sets"
        " storage_quota_bytes (default 1 TiB; 0 = unlimited)",
    )
    serve.add_argument(
        "--max-buckets",
        type=int,
        default=10,
        help="buckets an account may have unless its policy sets max_buckets"
        " (default 10; 0 = unlimited)",
    )

    serve.add_argument(
        "--metrics-listen",
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (plain HTTP; keep it on a "
        "private address)",
    )
    serve.add_argument(
        "--web-listen",
        default=None,
        metavar="HOST:PORT",
        help="serve the web console and the HTTP API (/api/v1/) at HOST:PORT: https with "
        "the server's certificate when it has TLS, else plain http (loopback only unless "
        "--insecure-plaintext)",
    )
    serve.add_argument(
        "--web-idle-minutes",
        type=int,
        default=30,
        help="a console session with no request for this long ends (default 30)",
    )
    serve.add_argument(
        "--web-secure-cookies",
        action="store_true",
        help="mark console cookies Secure over plain http (behind a TLS-terminating proxy)",
    )
    serve.add_argument(
        "--metrics-refresh-seconds",
        type=float,
        default=15.0,
        help="how often metrics read from the database (jobs, queues, last backups) refresh",
    )
    serve.add_argument(
        "--notify-poll-seconds",
        type=float,
        default=5.0,
        help="how often queued mails/webhooks and new events are looked at",
    )
    serve.add_argument(
        "--notify-retry-seconds",
        type=float,
        default=30.0,
        help="first wait before a failed mail or webhook call is retried (it doubles, "
        "up to --notify-max-retry-seconds)",
    )
    serve.add_argument("--notify-max-retry-seconds", type=float, default=3600.0)
    serve.add_argument(
        "--missed-grace-seconds",
        type=int,
        default=1800,
        help="a scheduled run with no job this long after its time is recorded as missed",
    )
    serve.add_argument(
        "--maintenance-seconds",
        type=int,
        default=30,
        help="how often abandoned jobs and missed runs are looked for",
    )

    certificate = sub.add_parser(
        "make-certificate",
        help="create a self-signed TLS certificate (kept if one exists) and print its fingerprint",
    )
    certificate.add_argument(
        "--dir", type=Path, required=True, help="writes DIR/server.crt and DIR/server.key (0600)"
    )
    certificate.add_argument(
        "--name",
        action="append",
        default=[],
        help="a host name or address clients use (repeatable; localhost and this host's "
        "name are always included)",
    )

    health = sub.add_parser(
        "health",
        help="exit 0 when the server at URL answers SERVING on the standard gRPC health"
        " service (container health checks)",
    )
    health.add_argument("--url", default="http://127.0.0.1:8060/", help="the server's URL")
    health.add_argument("--timeout", type=float, default=5.0, help="seconds to wait")

    migrate = sub.add_parser("migrate", help="upgrade the database schema to the newest")
    _add_db_args(migrate)

    add_admin = sub.add_parser("add-admin", help="create an administrator in the database")
    add_admin.add_argument("username")
    add_admin.add_argument(
        "--password-stdin", action="store_true", required=True, help="read the password from stdin"
    )
    _add_db_args(add_admin)
    return parser


def _add_db_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None, help="server data directory")
    parser.add_argument(
        "--database-url",
        default=None,
        help="use this PostgreSQL instead of the embedded one (postgresql://…)",
    )


def _listen_address(value: str) -> tuple[str, bool]:
    """HOST:PORT from ``--listen``, and whether its URL form asked for https."""
    for scheme, https in (("https://", True), ("http://", False)):
        if value.startswith(scheme):
            return value.removeprefix(scheme).rstrip("/"), https
    return value, False


def require_safe_listen(host: str, *, tls: bool, insecure_plaintext: bool) -> None:
    """Plaintext only on loopback (or a unix socket) unless explicitly allowed: login
    keys and device tokens must not cross a network in the clear."""
    if tls or insecure_plaintext or is_loopback(host):
        return
    raise ServerError(
        f"refusing to serve plaintext gRPC on {host or '*'}: logins and device tokens "
        "would cross the network in the clear. Use --tls (a self-signed certificate in "
        "DATA_DIR/tls) or --tls-cert/--tls-key, listen on 127.0.0.1 behind a proxy that "
        "terminates TLS, or pass --insecure-plaintext if you accept the risk"
    )


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost" or host.startswith("unix:"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _certificate(config: ServerConfig) -> ServerConfig:
    """With --tls and no certificate: the self-signed one in DATA_DIR/tls, made now
    (so its fingerprint can be shown) and reused at every start."""
    if not config.tls or (config.tls_cert and config.tls_key):
        return config
    host = config.listen.rpartition(":")[0] or "127.0.0.1"
    pair = ensure_self_signed(config.data_dir, certificate_names(host))
    return replace(config, tls_cert=pair.cert, tls_key=pair.key)


def _show_fingerprint(cert: Path) -> None:
    try:
        fingerprint = certificate_fingerprint(cert.read_bytes())
    except (OSError, ValueError) as e:
        raise ServerError(f"cannot read the TLS certificate {cert}: {e}") from e
    # Clients confirm this at their first login: give it to the people who log in.
    logging.getLogger("comet.server").info("TLS certificate fingerprint %s", fingerprint)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    data_dir: Path = (getattr(args, "data_dir", None) or default_data_dir()).absolute()
    try:
        if args.command == "serve":
            if (args.tls_cert is None) != (args.tls_key is None):
                raise ServerError("--tls-cert and --tls-key go together")
            listen, https = _listen_address(args.listen)
            try:
                parse_networks(args.trusted_proxy)
            except ValueError as e:
                raise ServerError(f"--trusted-proxy: {e}") from e
            if args.audit_retention_days < 1:
                raise ServerError("--audit-retention-days must be at least 1")
            tls = bool(args.tls or https or args.tls_cert)
            require_safe_listen(
                listen.rpartition(":")[0] or "127.0.0.1",
                tls=tls,
                insecure_plaintext=args.insecure_plaintext,
            )
            if args.bucket_store and args.bucket_dir:
                raise ServerError("--bucket-store and --bucket-dir exclude each other")
            config = ServerConfig(
                data_dir=data_dir,
                listen=listen,
                tls=tls,
                database_url=args.database_url,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                heartbeat_seconds=args.heartbeat_seconds,
                secret_key_file=args.secret_key_file or secret_key_file_from_env(),
                job_timeout_seconds=args.job_timeout_seconds,
                job_log_retention_days=args.job_log_retention_days,
                bucket_dir=args.bucket_dir.absolute() if args.bucket_dir else None,
                bucket_store=args.bucket_store,
                s3_endpoint=args.s3_endpoint,
                s3_region=args.s3_region,
                s3_credentials=_s3_credentials(args),
                bucket_quota_bytes=args.bucket_quota_bytes,
                trusted_proxies=tuple(args.trusted_proxy),
                audit_retention_days=args.audit_retention_days,
                account_quota_bytes=args.account_quota_bytes,
                max_buckets=args.max_buckets,
                metrics_listen=args.metrics_listen,
                metrics_refresh_seconds=args.metrics_refresh_seconds,
                notify_poll_seconds=args.notify_poll_seconds,
                notify_retry_seconds=args.notify_retry_seconds,
                notify_max_retry_seconds=args.notify_max_retry_seconds,
                missed_grace_seconds=args.missed_grace_seconds,
                maintenance_seconds=args.maintenance_seconds,
                web_listen=args.web_listen,
                web_idle_minutes=args.web_idle_minutes,
                web_secure_cookies=args.web_secure_cookies,
            )
            if args.web_listen and not tls:
                require_safe_listen(
                    args.web_listen.rpartition(":")[0] or "127.0.0.1",
                    tls=False,
                    insecure_plaintext=args.insecure_plaintext,
                )
            if args.web_idle_minutes < 1:
                raise ServerError("--web-idle-minutes must be at least 1")
            config = _certificate(config)
            if config.tls_cert:
                _show_fingerprint(config.tls_cert)
            from comet.server.app import serve

            asyncio.run(
                serve(config, on_ready=lambda url: print(f"listening on {url}", flush=True))
            )
        elif args.command == "make-certificate":
            pair = ensure_self_signed(
                args.dir, dict.fromkeys([*certificate_names(""), *args.name]), tls_dir=args.dir
            )
            print(f"certificate {pair.cert}")
            print(f"fingerprint {certificate_fingerprint(pair.cert.read_bytes())}")
        elif args.command == "health":
            from comet.server.health_check import check_health

            status = check_health(args.url, args.timeout)
            print(status)
            return 0 if status == "SERVING" else 1
        elif args.command == "migrate":
            from comet.server import bootstrap

            bootstrap.migrate_only(data_dir, args.database_url)
            print("database schema is up to date")
        elif args.command == "add-admin":
            from comet.server import bootstrap

            password = sys.stdin.readline().rstrip("\n")
            bootstrap.add_admin(data_dir, args.database_url, args.username, password)
            print(f"administrator {args.username!r} created")
    except ServerError as e:
        print(f"comet-server: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a data dir, certificate or key file that cannot be used
        if e.filename is None:
            raise  # not a path problem: keep the traceback
        print(f"comet-server: error: {os_error_sentence(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
