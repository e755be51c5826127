"""Whether to trust the certificate an https server presents: look at it with
nothing but a TLS handshake, then decide from the CA given, the system roots, the
pin recorded at an earlier login and the fingerprint the person confirmed."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from comet.agent.transport import (
    ServerTrust,
    TlsTrustError,
    certificate_fingerprint,
    normalise_fingerprint,
    parse_server_url,
    pin_certificate,
    system_roots_file,
)


@dataclass(frozen=True)
class PresentedCertificate:
    """The certificate an https server presents. ``verified``: it chains to the CA
    given at login, or to the system's roots when none was given, for this host name;
    ``problem`` says why not."""

    pem: bytes
    fingerprint: str
    verified: bool
    problem: str = ""


def probe_certificate(
    url: str, *, ca_pem: bytes = b"", timeout: float = 15
) -> PresentedCertificate:
    """Shake hands with an https server and look at its certificate; nothing but
    the TLS handshake is sent (blocking; run it off the event loop)."""
    address = parse_server_url(url)
    host, _, port_text = address.target.rpartition(":")
    host = host.strip("[]")
    verifying = _verifying_context(ca_pem)
    try:
        der = _handshake(verifying, host, int(port_text), timeout)
        verified, problem = True, ""
    except ssl.SSLCertVerificationError as e:
        verified, problem = False, e.verify_message or str(e)
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        try:
            der = _handshake(unverified, host, int(port_text), timeout)
        except (OSError, ssl.SSLError) as e2:
            raise TlsTrustError(f"cannot read the TLS certificate of {address.url}: {e2}") from e2
    except (OSError, ssl.SSLError) as e:
        raise TlsTrustError(f"cannot read the TLS certificate of {address.url}: {e}") from e
    pem = ssl.DER_cert_to_PEM_cert(der).encode()
    return PresentedCertificate(pem, certificate_fingerprint(pem), verified, problem)


def _verifying_context(ca_pem: bytes) -> ssl.SSLContext:
    """Checks the chain and the host name against ``ca_pem`` alone, or against the
    system roots when it is empty."""
    if ca_pem:
        try:
            return ssl.create_default_context(cadata=ca_pem.decode("ascii"))
        except (ssl.SSLError, UnicodeDecodeError) as e:
            raise TlsTrustError(f"--ca: not a PEM certificate ({e})") from e
    context = ssl.create_default_context()
    roots = system_roots_file()
    if roots:
        context.load_verify_locations(cafile=roots)
    return context


def _handshake(context: ssl.SSLContext, host: str, port: int, timeout: float) -> bytes:
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the server presented no certificate")
    return der


class TlsConfirmationError(TlsTrustError):
    """A self-signed (or otherwise unverifiable) certificate that nobody has
    confirmed yet: ``fingerprint`` is what the person must check."""

    code = "tls_confirm"

    def __init__(self, message: str, fingerprint: str) -> None:
        super().__init__(message)
        self.fingerprint = fingerprint


class TlsCertificateChangedError(TlsTrustError):
    code = "tls_changed"


def decide_trust(
    url: str,
    presented: PresentedCertificate,
    *,
    ca_pem: bytes = b"",
    pinned_pem: bytes = b"",
    confirmed: str = "",
    login_command: str = "comet login",
) -> ServerTrust | None:
    """How to trust an https server at login, given what it presents now.

    * ``--ca`` given: the certificate must chain to it.
    * Verified by the system roots: trusted as any https site (``None``).
    * Otherwise it is pinned: the pin recorded at an earlier login must match, or the
      person must have confirmed exactly this fingerprint (``confirmed``). A changed
      certificate is never trusted silently, not even by logging in again.
    """
    address = parse_server_url(url)
    fingerprint = presented.fingerprint
    if confirmed and normalise_fingerprint(confirmed) != fingerprint:
        raise TlsTrustError(
            f"the server at {address.url} presents the certificate {fingerprint}, not the "
            f"{normalise_fingerprint(confirmed)} you asked to trust; refusing to log in"
        )
    if ca_pem:
        if not presented.verified:
            raise TlsTrustError(
                f"the certificate of {address.url} ({fingerprint}) is not valid for this "
                f"address under the CA given with --ca: {presented.problem}"
            )
        return ServerTrust(ca_pem)
    if presented.verified:
        return None
    if pinned_pem:
        pinned = certificate_fingerprint(pinned_pem)
        if pinned != fingerprint and not confirmed:
            raise TlsCertificateChangedError(
                changed_certificate_message(address.url, pinned, fingerprint, login_command)
            )
        return pin_certificate(address.url, presented.pem)
    if not confirmed:
        raise TlsConfirmationError(
            f"the certificate of {address.url} is not signed by an authority this "
            f"computer trusts; its fingerprint is {fingerprint}. If that is your server's "
            "(ask its administrator: comet-server prints it at start), log in with "
            f"'{login_command} … --trust-fingerprint {fingerprint}', or give its CA with --ca",
            fingerprint,
        )
    return pin_certificate(address.url, presented.pem)


def changed_certificate_message(url: str, pinned: str, presented: str, login_command: str) -> str:
    return (
        f"the TLS certificate of {url} changed: trusted {pinned}, now presented "
        f"{presented}. Another server may be answering at this address; nothing was sent "
        "to it. If the change is expected (ask the administrator), trust the new one with "
        f"'{login_command} … --trust-fingerprint {presented}'"
    )


def explain_refused_certificate(url: str, trust: ServerTrust | None, login_command: str) -> str:
    """Why a channel's handshake failed, with the trusted and presented fingerprints
    (blocking: one more TLS handshake, nothing else sent)."""
    generic = (
        f"the TLS certificate of {url} is not the one trusted at login; nothing was sent "
        f"to it. If the change is expected, log in again with '{login_command} … "
        "--trust-fingerprint NEW' (the new fingerprint checked with the administrator)"
    )
    try:
        presented = probe_certificate(
            url, ca_pem=b"" if trust is None or trust.pinned else trust.root_pem, timeout=5
        )
    except TlsTrustError:
        return generic
    if trust is not None and trust.pinned:
        pinned = certificate_fingerprint(trust.root_pem)
        return changed_certificate_message(url, pinned, presented.fingerprint, login_command)
    return (
        f"{generic}; it now presents {presented.fingerprint} ({presented.problem or 'not valid'})"
    )
