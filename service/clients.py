"""Who is really calling: the client address and scheme of a request, behind trusted reverse proxies or not.

Behind a TLS-terminating proxy every request's peer is the proxy. Only when that peer is one of
``PEIL_TRUSTED_PROXIES`` are its ``X-Forwarded-For`` and ``X-Forwarded-Proto`` believed: the client is the
right-most address of ``X-Forwarded-For`` that is not itself a trusted proxy (everything left of it was
written by the client and may be forged). From any other peer the headers change nothing.

``RealClient`` resolves this once per request and writes it into the ASGI scope (``client``, ``scheme``);
``client_address(request)`` is the one function everything else reads (the link-guessing throttle, logins).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
SCOPE_KEY = "peil.client"  # the resolved client address, as a string, in the request's scope
UNKNOWN = "unknown"


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDRs (``10.0.0.1``, ``10.0.0.0/8``, ``::1``); a bad entry raises ValueError naming it."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not an address or CIDR: {entry.strip()!r}") from exc
    return tuple(networks)


def _address(text: str) -> Address | None:
    """An address as a proxy writes it: bare, ``[v6]`` or with a port (``1.2.3.4:5678``, ``[::1]:80``)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The proxies whose forwarding headers are believed."""

    def __init__(self, networks: Sequence[Network]) -> None:
        self.networks = tuple(networks)

    def trusts(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def resolve(
        self, peer: str | None, forwarded_for: Sequence[str], forwarded_proto: str | None
    ) -> tuple[str, str | None]:
        """(client address, scheme or None to keep the request's own) for a request from ``peer``."""
        peer_address = _address(peer) if peer else None
        if not self.trusts(peer_address):
            return (str(peer_address) if peer_address else peer or UNKNOWN), None
        client = str(peer_address)
        hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # not an address: the hops further left are not worth more; keep the last one trusted
            client = str(address)
            if not self.trusts(address):
                break
        scheme = None
        if forwarded_proto:
            last = forwarded_proto.split(",")[-1].strip().lower()
            scheme = last if last in ("http", "https") else None
        return client, scheme


def client_address(request: Request) -> str:
    """The real client of ``request``: resolved by ``RealClient``, else the connection's own peer."""
    resolved = request.scope.get(SCOPE_KEY)
    if isinstance(resolved, str):
        return resolved
    return request.client.host if request.client else UNKNOWN


class RealClient:
    """ASGI middleware: the request's client and scheme, from trusted proxies' headers or from the connection."""

    def __init__(self, app: ASGIApp, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer: Any = scope.get("client")
            forwarded_for: list[str] = []
            forwarded_proto = None
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":
                    forwarded_for.append(value.decode("latin-1"))
                elif name == b"x-forwarded-proto":
                    forwarded_proto = value.decode("latin-1")
            host, scheme = self.proxies.resolve(peer[0] if peer else None, forwarded_for, forwarded_proto)
            scope[SCOPE_KEY] = host
            if peer and host != peer[0]:
                scope["client"] = (host, 0)
            if scheme is not None:
                scope["scheme"] = scheme if scope["type"] == "http" else {"http": "ws", "https": "wss"}[scheme]
        await self.app(scope, receive, send)
