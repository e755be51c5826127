"""Which address a call came from, through trusted proxies only; and the back-off
arithmetic."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from comet.server.rpc.client_address import ClientAddresses, parse_networks
from comet.server.throttle import BackoffPolicy, FailureCount, retry_after

pytestmark = pytest.mark.timeout(10)


class Context:
    """The two things ClientAddresses reads from a grpc.aio context."""

    def __init__(self, peer: str, **headers: str) -> None:
        self._peer = peer
        self._headers = tuple((k.replace("_", "-"), v) for k, v in headers.items())

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._headers


def address(peer: str, trusted: tuple[str, ...] = ("10.0.0.0/8", "::1/128"), **headers: str) -> str:
    context: Any = Context(peer, **headers)
    return ClientAddresses(parse_networks(trusted)).of(context)


def test_headers_count_only_from_trusted_proxies() -> None:
    assert address("ipv4:192.0.2.9:5000", x_forwarded_for="198.51.100.1") == "192.0.2.9"
    assert address("ipv4:10.1.2.3:5000", x_forwarded_for="198.51.100.1") == "198.51.100.1"
    assert address("ipv4:10.1.2.3:5000", x_real_ip="198.51.100.2") == "198.51.100.2"
    assert address("ipv6:[::1]:5000", x_forwarded_for="2001:db8::7") == "2001:db8::7"
    assert address("ipv4:10.1.2.3:5000") == "10.1.2.3"  # a proxy that said nothing


def test_forwarded_for_is_read_from_the_right_past_trusted_hops() -> None:
    # The client wrote "6.6.6.6" itself; nginx appended the real peer; a second
    # trusted proxy appended the first.
    header = "6.6.6.6, 198.51.100.3, 10.9.9.9"
    assert address("ipv4:10.1.2.3:1", x_forwarded_for=header) == "198.51.100.3"


@pytest.mark.parametrize("header", ["not-an-address", "198.51.100.3, garbage", ""])
def test_unreadable_headers_fall_back_to_the_peer(header: str) -> None:
    assert address("ipv4:10.1.2.3:1", x_forwarded_for=header) == "10.1.2.3"


def test_bad_proxy_networks_are_named() -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0.0/33'")):
        parse_networks(["10.0.0.0/33"])


def test_back_off_doubles_after_the_free_failures_up_to_the_cap() -> None:
    policy = BackoffPolicy(
        free_per_account_source=2,
        free_per_source=4,
        first_delay=timedelta(seconds=10),
        max_delay=timedelta(seconds=60),
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    none = FailureCount(0, None)

    def wait(pair: int, source: int, ago: float = 0) -> int:
        latest = now - timedelta(seconds=ago)
        return retry_after(
            policy,
            pair=FailureCount(pair, latest) if pair else none,
            source=FailureCount(source, latest) if source else none,
            now=now,
        )

    assert [wait(n, n) for n in (1, 2, 3, 4, 5, 6)] == [0, 10, 20, 40, 60, 60]
    assert wait(0, 3) == 0 and wait(0, 4) == 10  # many accounts from one source
    assert wait(3, 3, ago=15) == 5 and wait(3, 3, ago=25) == 0
