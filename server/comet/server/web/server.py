"""Serves the console in the server's own event loop, beside grpc.aio: uvicorn's
protocol on a socket bound here, started and stopped by ``comet.server.app`` (not
``uvicorn.run``, which would take over the process's signals)."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import uvicorn

from comet.server.administration import Administration
from comet.server.app import Stores
from comet.server.clock import Clock
from comet.server.config import ServerConfig
from comet.server.errors import DatabaseSetupError
from comet.server.rpc.client_address import ClientAddresses
from comet.server.rpc.routing import CommandRouter
from comet.server.web.access import Access
from comet.server.web.app import WebOptions, build_app
from comet.server.web.console import Console
from comet.server.web.session_cookie import CookieCodec

VERSION = "0.1.0"


@dataclass
class WebServer:
    url: str
    _server: uvicorn.Server
    _socket: socket.socket

    async def stop(self) -> None:
        self._server.should_exit = True
        await self._server.shutdown(sockets=[self._socket])
        self._socket.close()


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = (host or "127.0.0.1").strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets whose proto
    # says TCP, and accepted sockets copy it. Without it, Nagle held each response's
    # body until the client's delayed ACK of its headers: 40 ms on every request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, int(port or 0)))
    except (OSError, ValueError) as e:
        sock.close()
        raise DatabaseSetupError(f"cannot listen on --web-listen {listen}: {e}") from e
    sock.listen(512)
    sock.setblocking(False)
    return sock


async def start_web(
    config: ServerConfig,
    stores: Stores,
    router: CommandRouter,
    clock: Clock,
    *,
    instance_id: str,
    addresses: ClientAddresses,
    tls: tuple[Path, Path] | None,
) -> WebServer:
    """Starts the console on ``config.web_listen``; https with ``tls`` (cert, key)."""
    assert config.web_listen
    administration = Administration(
        stores.accounts, stores.profiles, stores.policies, stores.jobs, router,
        stores.buckets, api_keys=stores.api_keys,
    )  # fmt: skip
    console = Console(
        accounts=stores.accounts,
        profiles=stores.profiles,
        policies=stores.policies,
        jobs=stores.jobs,
        buckets=stores.buckets,
        overview=stores.overview,
        directory=stores.directory,
        administration=administration,
        instance_id=instance_id,
        version=VERSION,
    )
    access = Access(
        stores.accounts,
        stores.api_keys,
        CookieCodec(await stores.accounts.server_secret("web-console")),
        clock,
        idle=timedelta(minutes=config.web_idle_minutes),
        addresses=addresses,
    )
    app = build_app(
        console,
        access,
        WebOptions(
            secure_cookies=tls is not None or config.web_secure_cookies,
            idle_timeout=timedelta(minutes=config.web_idle_minutes),
            version=VERSION,
        ),
    )
    uv_config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        date_header=False,  # no uvicorn main loop ticks to refresh it
        server_header=False,
        proxy_headers=False,  # client addresses go through ClientAddresses
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
        ssl_cert_reqs=ssl.CERT_NONE,
    )
    uv_config.load()
    server = uvicorn.Server(uv_config)
    server.lifespan = uv_config.lifespan_class(uv_config)
    sock = _bind(config.web_listen)
    await server.startup(sockets=[sock])
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return WebServer(f"{'https' if tls else 'http'}://{shown}:{port}/", server, sock)
