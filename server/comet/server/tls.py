"""The server's TLS certificate when none is configured: a self-signed one, made once
in ``DATA_DIR/tls/`` and reused, which agents pin at their first login."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from comet.server.errors import ServerError

VALID_FOR = datetime.timedelta(days=3650)


class TlsSetupError(ServerError):
    code = "tls_setup"


@dataclass(frozen=True)
class CertificatePair:
    cert: Path
    key: Path


def certificate_names(listen_host: str) -> list[str]:
    """The names a self-signed certificate covers: loopback, this machine's host
    name and the host the server listens on (unless it is a wildcard address)."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    host = listen_host.strip("[]")
    if host and host not in ("0.0.0.0", "::"):
        names.append(host)
    return list(dict.fromkeys(n for n in names if n))


def ensure_self_signed(
    data_dir: Path, names: Iterable[str], *, tls_dir: Path | None = None
) -> CertificatePair:
    """The certificate in ``data_dir/tls`` (or ``tls_dir``), created on first use.
    The key file is written 0600 before any key material goes in."""
    tls_dir = tls_dir or data_dir / "tls"
    pair = CertificatePair(tls_dir / "server.crt", tls_dir / "server.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    try:
        tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_pem, cert_pem = _self_signed(list(names))
        tmp_key = pair.key.with_suffix(".key.tmp")
        fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        os.replace(tmp_key, pair.key)
        tmp_cert = pair.cert.with_suffix(".crt.tmp")
        tmp_cert.write_bytes(cert_pem)
        os.replace(tmp_cert, pair.cert)
    except OSError as e:
        raise TlsSetupError(f"cannot write the TLS certificate in {tls_dir}: {e}") from e
    return pair


def _self_signed(names: list[str]) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)
