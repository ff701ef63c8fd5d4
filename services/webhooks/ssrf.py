"""Where webhooks may go: public addresses only, unless a network is allowed in the settings.

The check runs where the connection is made (``GuardedBackend``): the host is resolved once, every
address is checked, and the connection goes to the checked address, so a DNS answer that changes
between a check and the connect (rebinding) cannot slip through. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from httpcore import AsyncNetworkBackend, AsyncNetworkStream

from services.webhooks import network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
        "fd00:ec2::254",  # AWS over IPv6
    )
)


class ForbiddenTarget(Exception):
    """The URL is malformed, or its host resolves to an address webhooks may not reach."""


def parse_networks(cidrs: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(c, strict=False) for c in cidrs]


def refusal(address: Address, allowed: Sequence[Network]) -> str | None:
    """Why ``address`` may not be a webhook target, or ``None`` when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed):
        return None
    if address in METADATA:
        return "a cloud metadata address"
    for kind, hit in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
    ):
        if hit:
            return f"a {kind} address"
    if not address.is_global:
        return "not a public address"
    return None


def check_url(url: str) -> tuple[str, int]:
    """Host and port of an acceptable webhook URL (syntax only; addresses are checked later)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise ForbiddenTarget("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ForbiddenTarget("has no host")
    if parts.username or parts.password:
        raise ForbiddenTarget("must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ForbiddenTarget("has an invalid port") from None
    return parts.hostname, port


async def resolve_checked(host: str, port: int, allowed: Sequence[Network]) -> list[str]:
    """Every address ``host`` resolves to, all acceptable; else ``ForbiddenTarget``."""
    try:
        literal: Address | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as error:
            raise ForbiddenTarget(f"{host} does not resolve ({error.strerror})") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    for address in addresses:
        reason = refusal(address, allowed)
        if reason:
            raise ForbiddenTarget(f"{host} resolves to {address}, {reason}")
    return [str(a) for a in addresses]


async def check_target(url: str, allowed: Sequence[Network]) -> None:
    host, port = check_url(url)
    await resolve_checked(host, port, allowed)


class GuardedBackend(AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses ``refusal`` accepts."""

    def __init__(self, allowed: Sequence[Network]) -> None:
        self.allowed = list(allowed)
        self.inner = network.Backend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        addresses = await resolve_checked(host, port, self.allowed)
        return await self.inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        raise ForbiddenTarget("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
