"""Who a request comes from, for the rate limit without API keys: X-Forwarded-For only from a trusted proxy."""

from __future__ import annotations

import pytest

from fraudops.config import trusted_networks
from fraudops_gateway.guards import client_address

PROXIES = trusted_networks("10.0.0.0/8, 192.0.2.7")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "client"),
    [
        ("203.0.113.5", b"198.51.100.1", "", "203.0.113.5"),  # no proxy trusted: the header is ignored
        ("203.0.113.5", b"198.51.100.1", "10.0.0.0/8", "203.0.113.5"),  # a peer that is no trusted proxy
        ("10.1.2.3", b"198.51.100.1", "10.0.0.0/8", "198.51.100.1"),  # one trusted proxy
        ("10.1.2.3", b"198.51.100.1, 192.0.2.7", "10.0.0.0/8, 192.0.2.7", "198.51.100.1"),  # two trusted hops
        # a client that writes its own header: only the hop the trusted proxy appended counts
        ("10.1.2.3", b"1.1.1.1, 198.51.100.1", "10.0.0.0/8", "198.51.100.1"),
        ("10.1.2.3", b"10.9.9.9, 10.8.8.8", "10.0.0.0/8", "10.9.9.9"),  # every hop trusted: the first
        ("10.1.2.3", b"unknown, 198.51.100.1", "10.0.0.0/8", "198.51.100.1"),
        ("10.1.2.3", b"198.51.100.1, not-an-address", "10.0.0.0/8", "10.1.2.3"),  # garbage after the client
        ("10.1.2.3", None, "10.0.0.0/8", "10.1.2.3"),
        ("::1", b"2001:db8::5", "::1", "2001:db8::5"),
        (None, b"198.51.100.1", "10.0.0.0/8", "unknown"),
    ],
)
def test_the_client_is_the_nearest_address_that_is_not_a_trusted_proxy(
    peer: str | None, forwarded_for: bytes | None, trusted: str, client: str
) -> None:
    assert client_address(peer, forwarded_for, trusted_networks(trusted)) == client


def test_trusted_proxies_are_addresses_or_networks() -> None:
    assert [str(network) for network in PROXIES] == ["10.0.0.0/8", "192.0.2.7/32"]
    with pytest.raises(ValueError, match=r"'proxy\.local' is not an IP address or network"):
        trusted_networks("10.0.0.1, proxy.local")
