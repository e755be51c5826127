"""Checking that the server can have its TCP ports to itself, with one sentence when
it cannot ("port 8060 is in use").

gRPC sets ``SO_REUSEPORT`` unless told not to, which lets a second server share a
port with the first, each getting a random half of the connections; the server turns
it off (``grpc.so_reuseport`` = 0) and probes its ports before the slow start of its
database so a taken port stops it at once."""

from __future__ import annotations

import errno
import socket

from comet.agent.errors import os_error_sentence
from comet.server.errors import ListenError


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8060``; an empty host is 127.0.0.1) as host and port."""
    host, _, port_text = listen.rpartition(":")
    try:
        port = int(port_text)
    except ValueError:
        raise ListenError(f"{listen!r} is not HOST:PORT (for example 127.0.0.1:8060)") from None
    return host.strip("[]") or "127.0.0.1", port


def check_port_free(listen: str, *, option: str) -> None:
    """ListenError with a sentence if ``listen`` cannot be bound now. The probe uses
    SO_REUSEADDR like the real listeners do, so a port merely in TIME_WAIT is free."""
    host, port = split_listen(listen)
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        raise ListenError(
            f"cannot listen on {listen}: {host!r} is not an address or host name of this"
            f" machine; give {option} one of its addresses (127.0.0.1, 0.0.0.0, [::])"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            raise ListenError(listen_failure(listen, e, option=option)) from e


def listen_failure(listen: str, error: OSError, *, option: str) -> str:
    host, port = split_listen(listen)
    if error.errno == errno.EADDRINUSE:
        return (
            f"port {port} is in use (on {host}): another program, perhaps another"
            f" comet-server, listens there; stop it ('ss -ltnp' shows which) or choose"
            f" another port with {option}"
        )
    if error.errno == errno.EACCES and port < 1024:
        return (
            f"port {port} is privileged (below 1024): run as root, grant the"
            f" CAP_NET_BIND_SERVICE capability, or choose a port from 1024 up with {option}"
        )
    return f"cannot listen on {listen}: " + os_error_sentence(error, path=host)
