"""A server never shares its port: gRPC's default SO_REUSEPORT would let a second
server bind it and take half the connections."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from comet.server.app import GRPC_OPTIONS, _bind, grpc_server
from comet.server.config import ServerConfig
from comet.server.errors import ListenError
from comet.server.listen import check_port_free
from comet.server.web import server as web_server

pytestmark = pytest.mark.timeout(60)


async def test_a_second_grpc_server_cannot_bind_a_taken_port(tmp_path: Path) -> None:
    first = grpc_server(options=GRPC_OPTIONS)
    url = _bind(first, ServerConfig(tmp_path, listen="127.0.0.1:0"))
    await first.start()
    try:
        port = int(url.rstrip("/").rpartition(":")[2])
        second = grpc_server(options=GRPC_OPTIONS)
        with pytest.raises(ListenError, match=f"port {port} is in use .*--listen"):
            _bind(second, ServerConfig(tmp_path, listen=f"127.0.0.1:{port}"))
    finally:
        await first.stop(None)


def test_the_probe_names_the_option_and_the_cause() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match=f"port {port} is in use.*--metrics-listen"):
            check_port_free(f"127.0.0.1:{port}", option="--metrics-listen")
    with pytest.raises(ListenError, match="not an address or host name of this machine"):
        check_port_free("no-such-host.invalid:8060", option="--listen")
    with pytest.raises(ListenError, match="not HOST:PORT"):
        check_port_free("127.0.0.1:http", option="--listen")
    check_port_free("127.0.0.1:0", option="--listen")


async def test_the_consoles_connections_send_without_nagle() -> None:
    """The console's socket says TCP, so asyncio turns Nagle off on each connection:
    with it on, a response's body waited for the client's delayed ACK of its headers
    (40 ms a request on Linux)."""
    sock = web_server._bind("127.0.0.1:0")
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            conn = transport.get_extra_info("socket")
            accepted.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    try:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        assert await asyncio.wait_for(accepted, 10) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
