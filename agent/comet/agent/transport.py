"""Channels to a Comet Server from its URL: ``http://host:port/`` is plaintext gRPC,
``https://host:port/`` is TLS (system roots, or a given CA / pinned certificate)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import grpc

from comet.agent.errors import AgentError

GRPC_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]


class ServerUrlError(AgentError):
    code = "server_url"


@dataclass(frozen=True)
class ServerAddress:
    url: str
    target: str
    secure: bool


def parse_server_url(url: str) -> ServerAddress:
    """Validate a server address as users type it (scheme, host, optional port,
    trailing slash) and return its gRPC target."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise ServerUrlError(f"the server address {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise ServerUrlError(f"the server address {url!r} has no host name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ServerUrlError(f"the server address {url!r} must not have a path")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    normalised = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "") + "/"
    return ServerAddress(url=normalised, target=f"{host}:{port}", secure=parts.scheme == "https")


def _credentials(ca_pem: bytes | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=ca_pem)


def sync_channel(url: str, *, ca_pem: bytes | None = None) -> grpc.Channel:
    address = parse_server_url(url)
    if address.secure:
        return grpc.secure_channel(address.target, _credentials(ca_pem), options=GRPC_OPTIONS)
    return grpc.insecure_channel(address.target, options=GRPC_OPTIONS)


def aio_channel(url: str, *, ca_pem: bytes | None = None) -> grpc.aio.Channel:
    address = parse_server_url(url)
    if address.secure:
        return grpc.aio.secure_channel(address.target, _credentials(ca_pem), options=GRPC_OPTIONS)
    return grpc.aio.insecure_channel(address.target, options=GRPC_OPTIONS)


def rpc_error_message(error: grpc.RpcError) -> str:
    """The human part of a gRPC error, without the transport's wrapping."""
    code: grpc.StatusCode | None = None
    details: str | None = None
    if isinstance(error, grpc.Call | grpc.aio.AioRpcError):
        code, details = error.code(), error.details()
    if code == grpc.StatusCode.UNAVAILABLE and not details:
        return "the server is not reachable"
    if code == grpc.StatusCode.UNAVAILABLE and details and "connect" in details.lower():
        return f"the server is not reachable ({details})"
    return details or str(code or error)
