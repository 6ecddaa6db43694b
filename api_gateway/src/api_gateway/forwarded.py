"""The client's address: the peer, or X-Forwarded-For when the peer is a trusted proxy; and the
part of it a rate limit counts."""

from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address

from starlette.types import Scope

from api_gateway.config import Network

Address = IPv4Address | IPv6Address
# An IPv6 host is handed a whole /64 (SLAAC, privacy addresses) and may send from any address
# of it: limits keyed on the address alone would give it 2^64 quotas, and as many password
# guesses a minute.
IPV6_LIMIT_PREFIX = 64


@lru_cache(maxsize=4096)
def _parse(text: str) -> Address | None:
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: Address | None, proxies: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in proxies)


def forwarded_for(scope: Scope) -> list[str]:
    """Every X-Forwarded-For hop, leftmost (claimed client) first."""
    hops: list[str] = []
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            hops.extend(part.strip() for part in value.decode("latin-1").split(","))
    return hops


def client_ip(scope: Scope, proxies: tuple[Network, ...]) -> str:
    """The address rate limits and logs are keyed on.

    Like nginx's real_ip_recursive: only when the peer is trusted is X-Forwarded-For read,
    from the right, skipping trusted proxies; the first untrusted hop is the client. Anything
    a client writes further left cannot move its own address.
    """
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    if not proxies or not _trusted(_parse(peer), proxies):
        return peer
    current = peer
    for hop in reversed(forwarded_for(scope)):
        address = _parse(hop)
        if address is None:
            # A garbled entry: trust stops at the last proxy that wrote a valid one.
            return current
        current = str(address)
        if not _trusted(address, proxies):
            return current
    return current


@lru_cache(maxsize=4096)
def limited_address(client: str) -> str:
    """What a per-address rate limit counts: an IPv4 address as it is, an IPv6 one as the /64
    it belongs to (an IPv4-mapped one as its IPv4 address)."""
    address = _parse(client)
    if not isinstance(address, IPv6Address):
        return client
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(IPv6Network((int(address), IPV6_LIMIT_PREFIX), strict=False))
