"""The address a call came from, looking through trusted reverse proxies.

Behind a proxy (the shipped nginx config) every call comes from the proxy's
address, so the client's own address is taken from the ``X-Forwarded-For`` (or
``X-Real-IP``) header, but only when the peer is a configured trusted proxy:
anyone else could write any address there."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

import grpc

from comet.server.rpc.auth_context import peer_address

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """``--trusted-proxy`` values; ValueError names the one that does not parse."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as e:
            raise ValueError(f"{cidr!r} is not an address or CIDR network") from e
    return tuple(networks)


class ClientAddresses:
    def __init__(self, trusted_proxies: Iterable[Network] = ()) -> None:
        self._trusted = tuple(trusted_proxies)

    def of(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        headers = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        return self.of_peer(peer_address(context), headers)

    def of_peer(self, peer: str, headers: Mapping[str, str]) -> str:
        """The client behind ``peer`` (an HTTP request's too), given lower-case headers."""
        if not self._is_trusted(_parse(peer)):
            return peer
        forwarded = self._from_forwarded_for(headers.get("x-forwarded-for", ""))
        if forwarded is None:
            forwarded = _parse(headers.get("x-real-ip", "").strip())
        return str(forwarded) if forwarded is not None else peer

    def _from_forwarded_for(self, header: str) -> Address | None:
        """The right-most address not of a trusted proxy: the ones to its left were
        written by the client itself and prove nothing."""
        entries = [e.strip() for e in header.split(",")][-32:]
        for entry in reversed(entries):
            address = _parse(entry)
            if address is None:
                return None
            if not self._is_trusted(address):
                return address
        return None

    def _is_trusted(self, address: Address | None) -> bool:
        return address is not None and any(address in net for net in self._trusted)


def _parse(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
