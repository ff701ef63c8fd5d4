"""Which addresses and URLs webhooks may target."""

from __future__ import annotations

import ipaddress

import pytest

from services.webhooks.ssrf import ForbiddenTarget, check_url, parse_networks, refusal

LOOPBACK_ALLOWED = parse_networks(["127.0.0.0/8", "::1/128"])


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("10.0.0.8", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("0.0.0.0", "a unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("100.64.0.1", "not a public address"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_only_public_addresses_are_targets(address: str, reason: str | None) -> None:
    assert refusal(ipaddress.ip_address(address), []) == reason


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", None),
        ("::1", None),
        ("10.0.0.8", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
    ],
)
def test_allowed_networks_open_only_themselves(address: str, reason: str | None) -> None:
    assert refusal(ipaddress.ip_address(address), LOOPBACK_ALLOWED) == reason


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://crm.example.com/hook", ("crm.example.com", 443)),
        ("http://crm.example.com:8080/x?y=1", ("crm.example.com", 8080)),
        ("http://[::1]:9000/", ("::1", 9000)),
    ],
)
def test_acceptable_urls(url: str, expected: tuple[str, int]) -> None:
    assert check_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "ftp://crm.example.com/",
        "file:///etc/passwd",
        "crm.example.com/hook",
        "https://user:pw@crm.example.com/",
        "https:///nohost",
        "http://crm.example.com:99999/",
    ],
)
def test_unacceptable_urls(url: str) -> None:
    with pytest.raises(ForbiddenTarget):
        check_url(url)
