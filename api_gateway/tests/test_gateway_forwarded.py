"""The client address: X-Forwarded-For counts only when the peer is a trusted proxy."""

from ipaddress import ip_network

import pytest
from api_gateway.forwarded import client_ip, limited_address

PROXIES = (ip_network("10.0.0.0/8"), ip_network("::1/128"))


def scope(peer: str, *forwarded: str) -> dict:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"client": (peer, 5555), "headers": headers}


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_ip(scope("203.0.113.9", "1.2.3.4"), ()) == "203.0.113.9"


def test_an_untrusted_peer_cannot_claim_another_address() -> None:
    assert client_ip(scope("203.0.113.9", "1.2.3.4"), PROXIES) == "203.0.113.9"


def test_a_trusted_proxy_names_the_client() -> None:
    assert client_ip(scope("10.1.1.1", "198.51.100.7"), PROXIES) == "198.51.100.7"


def test_a_chain_is_read_from_the_right_skipping_trusted_hops() -> None:
    chain = scope("10.1.1.1", "6.6.6.6, 198.51.100.7, 10.2.2.2")
    assert client_ip(chain, PROXIES) == "198.51.100.7"


def test_what_a_client_prepends_cannot_move_its_address() -> None:
    # The client sent "X-Forwarded-For: 10.9.9.9"; the proxy appended the real address.
    assert client_ip(scope("10.1.1.1", "10.9.9.9", "198.51.100.7"), PROXIES) == "198.51.100.7"


@pytest.mark.parametrize("garbage", ["not-an-ip", "", "1.2.3.4.5", "<script>"])
def test_a_garbled_hop_stops_trust_at_the_last_good_proxy(garbage: str) -> None:
    assert client_ip(scope("10.1.1.1", f"198.51.100.7, {garbage}"), PROXIES) == "10.1.1.1"


def test_all_hops_trusted_gives_the_leftmost() -> None:
    assert client_ip(scope("10.1.1.1", "10.3.3.3, 10.2.2.2"), PROXIES) == "10.3.3.3"


def test_ipv6_addresses_are_normalised() -> None:
    assert client_ip(scope("::1", "2001:DB8::0001"), PROXIES) == "2001:db8::1"


@pytest.mark.parametrize(
    ("client", "counted"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:a:b:c:d", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),  # the same host, another privacy address
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("unknown", "unknown"),
    ],
)
def test_a_rate_limit_counts_an_ipv6_client_by_its_64(client: str, counted: str) -> None:
    assert limited_address(client) == counted
