"""Channels to a Comet Server from its URL: ``http://host:port/`` is plaintext gRPC,
``https://host:port/`` is TLS (system roots, or a given CA / pinned certificate)."""

from __future__ import annotations

import functools
import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import grpc

if TYPE_CHECKING:
    # Imported where used: pinning a certificate is rare, and an idle agent should not
    # carry ``cryptography`` (~10 MiB resident).
    from cryptography import x509

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


class TlsTrustError(AgentError):
    code = "tls_trust"


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


@dataclass(frozen=True)
class ServerTrust:
    """How an https server is trusted: ``root_pem`` is either a CA bundle or the
    server's own certificate pinned at login. ``name_override`` is a name the pinned
    certificate carries, used to check it when the URL's host is not one of them."""

    root_pem: bytes
    pinned: bool = False
    name_override: str = ""


# The trust recorded for each server URL by the agent state or the admin config, so
# that every channel to that server uses it without each caller passing it along.
_trust_by_url: dict[str, ServerTrust] = {}


def remember_trust(url: str, trust: ServerTrust | None) -> None:
    key = parse_server_url(url).url
    if trust is None:
        _trust_by_url.pop(key, None)
    else:
        _trust_by_url[key] = trust


def _secure_args(
    url: str, trust: ServerTrust | None
) -> tuple[grpc.ChannelCredentials, list[tuple[str, Any]]]:
    trust = trust or _trust_by_url.get(url)
    options: list[tuple[str, Any]] = list(GRPC_OPTIONS)
    if trust is not None and trust.name_override:
        options.append(("grpc.ssl_target_name_override", trust.name_override))
    root = trust.root_pem if trust is not None else _system_roots()
    return grpc.ssl_channel_credentials(root_certificates=root), options


def sync_channel(
    url: str, *, trust: ServerTrust | None = None, ca_pem: bytes | None = None
) -> grpc.Channel:
    address = parse_server_url(url)
    if address.secure:
        if ca_pem:
            trust = ServerTrust(ca_pem)
        credentials, options = _secure_args(address.url, trust)
        return grpc.secure_channel(address.target, credentials, options=options)
    return grpc.insecure_channel(address.target, options=GRPC_OPTIONS)


def aio_channel(
    url: str, *, trust: ServerTrust | None = None, ca_pem: bytes | None = None
) -> grpc.aio.Channel:
    address = parse_server_url(url)
    if address.secure:
        if ca_pem:
            trust = ServerTrust(ca_pem)
        credentials, options = _secure_args(address.url, trust)
        return grpc.aio.secure_channel(address.target, credentials, options=options)
    return grpc.aio.insecure_channel(address.target, options=GRPC_OPTIONS)


@functools.cache
def system_roots_file() -> str | None:
    """The system's CA bundle (what gRPC verifies against when no CA is given, rather
    than the bundle shipped inside grpcio)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def _system_roots() -> bytes | None:
    roots = system_roots_file()
    if roots is None:
        return None
    try:
        with open(roots, "rb") as f:
            return f.read()
    except OSError:
        return None


def pin_certificate(url: str, pem: bytes) -> ServerTrust:
    """Trust exactly this certificate for ``url``. When the URL's host is not among
    its names (a self-signed certificate made for another name), the check uses a
    name it does carry; the pinned key is what is verified."""
    from cryptography import x509

    host = parse_server_url(url).target.rpartition(":")[0].strip("[]")
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise TlsTrustError(f"the server at {url} sent an unreadable certificate") from e
    names = _certificate_names(cert)
    override = "" if host in names or not names else names[0]
    return ServerTrust(root_pem=pem, pinned=True, name_override=override)


def _certificate_names(cert: x509.Certificate) -> list[str]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    names: list[str] = []
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += alt.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attribute.value
        names.append(value if isinstance(value, str) else value.decode())
    return names


FINGERPRINT_PREFIX = "SHA256:"


def certificate_fingerprint(pem: bytes) -> str:
    """``SHA256:AB:CD:…``, the form ``openssl x509 -noout -fingerprint -sha256`` shows."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(pem)
    return FINGERPRINT_PREFIX + cert.fingerprint(hashes.SHA256()).hex(":").upper()


def normalise_fingerprint(text: str) -> str:
    """A fingerprint as people paste it (with or without ``SHA256:``, colons, any
    case) in the canonical ``SHA256:AB:CD:…`` form."""
    raw = text.strip()
    if raw.upper().startswith(FINGERPRINT_PREFIX):
        raw = raw[len(FINGERPRINT_PREFIX) :]
    digits = raw.replace(":", "").replace(" ", "").lower()
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise TlsTrustError(
            f"{text!r} is not a SHA-256 certificate fingerprint (expected SHA256: and 64 "
            "hex digits, colons optional)"
        )
    return FINGERPRINT_PREFIX + bytes.fromhex(digits).hex(":").upper()


def is_certificate_failure(details: str) -> bool:
    return "CERTIFICATE_VERIFY_FAILED" in details or "certificate verify failed" in details


def refused_certificate(error: grpc.RpcError) -> bool:
    """Whether a call failed because the server's certificate was not trusted."""
    if isinstance(error, grpc.Call | grpc.aio.AioRpcError):
        details = error.details() or ""
        return error.code() == grpc.StatusCode.UNAVAILABLE and is_certificate_failure(details)
    return False


def rpc_error_message(error: grpc.RpcError) -> str:
    """The human part of a gRPC error, without the transport's wrapping."""
    code: grpc.StatusCode | None = None
    details: str | None = None
    if isinstance(error, grpc.Call | grpc.aio.AioRpcError):
        code, details = error.code(), error.details()
        if details and _answered_by_comet(error):
            return details  # the server's own sentence (a device offline is not it)
    if code == grpc.StatusCode.UNAVAILABLE and details and is_certificate_failure(details):
        return (
            "the server's TLS certificate is not the one trusted at login (it changed, or "
            "another server answers at this address); nothing was sent to it. If the change "
            "is expected, log in again with --trust-fingerprint NEW (checked with the "
            "administrator)"
        )
    if code == grpc.StatusCode.UNAVAILABLE and not details:
        return "the server is not reachable"
    if code == grpc.StatusCode.UNAVAILABLE and details and "connect" in details.lower():
        return f"the server is not reachable ({details})"
    return details or str(code or error)


def _answered_by_comet(error: grpc.Call | grpc.aio.AioRpcError) -> bool:
    """Whether a Comet server (not the transport) chose this error: it then names its
    stable code in the trailing metadata."""
    try:
        metadata = error.trailing_metadata() or ()
    except Exception:  # a call that never reached a server has none to give
        return False
    return any(key == "comet-error-code" for key, _ in metadata)
