from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from comet.agent.certificate_trust import (
    PresentedCertificate,
    TlsCertificateChangedError,
    TlsConfirmationError,
    decide_trust,
)
from comet.agent.transport import (
    ServerTrust,
    ServerUrlError,
    TlsTrustError,
    certificate_fingerprint,
    normalise_fingerprint,
    parse_server_url,
)


@pytest.mark.parametrize(
    ("url", "target", "secure", "normalised"),
    [
        ("http://127.0.0.1:8060/", "127.0.0.1:8060", False, "http://127.0.0.1:8060/"),
        (
            "http://backup.example.com:8060",
            "backup.example.com:8060",
            False,
            "http://backup.example.com:8060/",
        ),
        (
            "https://backup.example.com/",
            "backup.example.com:443",
            True,
            "https://backup.example.com/",
        ),
        ("http://[::1]:9000/", "[::1]:9000", False, "http://[::1]:9000/"),
    ],
)
def test_server_urls_map_to_grpc_targets(
    url: str, target: str, secure: bool, normalised: str
) -> None:
    address = parse_server_url(url)
    assert (address.target, address.secure, address.url) == (target, secure, normalised)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:8060", "http:// or https://"),
        ("ftp://host/", "http:// or https://"),
        ("http:///", "no host"),
        ("http://host:8060/api", "must not have a path"),
    ],
)
def test_bad_server_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(ServerUrlError, match=message):
        parse_server_url(url)


def _presented(tmp: Path, name: str, *, verified: bool = False) -> PresentedCertificate:
    from comet.server.tls import ensure_self_signed

    pair = ensure_self_signed(tmp, ["127.0.0.1"], tls_dir=tmp / name)
    pem = pair.cert.read_bytes()
    return PresentedCertificate(pem, certificate_fingerprint(pem), verified, "self-signed")


URL = "https://127.0.0.1:8060/"


def test_fingerprints_are_accepted_as_people_paste_them() -> None:
    canonical = "SHA256:" + ":".join(["AB"] * 32)
    assert normalise_fingerprint(canonical.lower()) == canonical
    assert normalise_fingerprint("ab" * 32) == canonical
    assert normalise_fingerprint(" sha256:" + "AB" * 32 + " ") == canonical
    for bad in ("SHA256:AB", "xyz" * 22, "SHA1:" + "ab" * 32):
        with pytest.raises(TlsTrustError, match="not a SHA-256 certificate fingerprint"):
            normalise_fingerprint(bad)


def test_an_unvouched_certificate_needs_its_fingerprint_confirmed(tmp_path: Path) -> None:
    a = _presented(tmp_path, "a")
    with pytest.raises(TlsConfirmationError, match="--trust-fingerprint") as refused:
        decide_trust(URL, a)
    assert refused.value.fingerprint == a.fingerprint and a.fingerprint in str(refused.value)
    trust = decide_trust(URL, a, confirmed=a.fingerprint)
    assert trust is not None and trust.pinned and trust.root_pem == a.pem
    other = "SHA256:" + ":".join(["00"] * 32)
    with pytest.raises(TlsTrustError, match="not the"):
        decide_trust(URL, a, confirmed=other)


def test_a_changed_certificate_is_refused_with_both_fingerprints_until_re_pinned(
    tmp_path: Path,
) -> None:
    a, b = _presented(tmp_path, "a"), _presented(tmp_path, "b")
    same = decide_trust(URL, a, pinned_pem=a.pem)
    assert same is not None and same.pinned
    with pytest.raises(TlsCertificateChangedError) as refused:
        decide_trust(URL, b, pinned_pem=a.pem, login_command="comet-admin login")
    message = str(refused.value)
    assert a.fingerprint in message and b.fingerprint in message
    assert f"comet-admin login … --trust-fingerprint {b.fingerprint}" in message
    repinned = decide_trust(URL, b, pinned_pem=a.pem, confirmed=b.fingerprint)
    assert repinned is not None and repinned.root_pem == b.pem


def test_a_ca_must_vouch_for_the_certificate_when_given(tmp_path: Path) -> None:
    a = _presented(tmp_path, "a")
    with pytest.raises(TlsTrustError, match="--ca"):
        decide_trust(URL, a, ca_pem=b"ca")
    verified = replace(a, verified=True)
    assert decide_trust(URL, verified, ca_pem=b"ca") == ServerTrust(b"ca")
    # Valid under the system roots: trusted like any https site, nothing pinned.
    assert decide_trust(URL, verified) is None
