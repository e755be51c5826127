from __future__ import annotations

import pytest

from comet.agent.transport import ServerUrlError, parse_server_url


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
