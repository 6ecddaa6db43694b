"""DNS discovery: the addresses a URL's host name stands for (every pod of a headless Service)."""

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger("svc_common.discovery")


@dataclass(frozen=True)
class Address:
    """One place a URL's service listens: the URL with its host name replaced by one IP."""

    url: str
    name: str
    host_header: str | None = None

    @property
    def instance(self) -> str:
        """`host:port` of this address, as Prometheus labels a scraped target."""
        return urlsplit(self.url).netloc


def is_ip(host: str) -> bool:
    """Whether `host` is an IP literal (nothing to resolve)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def resolve(origin: str) -> list[Address]:
    """Every address of the URL's host name, one per distinct IP, port and path kept.

    IPv4 addresses win; IPv6 ones count only for a name without any, so `localhost` is one
    address, not two. An IP literal is its own one address. OSError when the name does not
    resolve.
    """
    url = urlsplit(origin)
    host = url.hostname or ""
    if is_ip(host):
        return [Address(origin, name=origin)]
    port = url.port or (443 if url.scheme == "https" else 80)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    v4 = [str(info[4][0]) for info in infos if info[0] == socket.AF_INET]
    v6 = [str(info[4][0]) for info in infos if info[0] == socket.AF_INET6]
    return [
        Address(
            f"{url.scheme}://{f'[{ip}]' if ':' in ip else ip}:{port}{url.path}",
            name=f"{origin} ({ip})",
            host_header=url.netloc,
        )
        for ip in sorted(set(v4 or v6))
    ]


Resolver = Callable[[str], Awaitable[list[Address]]]


class Discovery:
    """The addresses of some URLs as last resolved; a failed lookup keeps the previous ones."""

    def __init__(self, origins: Iterable[str], resolver: Resolver = resolve) -> None:
        self.origins = list(dict.fromkeys(origins))
        self.resolver = resolver
        self.addresses: dict[str, list[Address]] = {}
        self.unresolved: dict[str, str] = {}

    async def refresh(self) -> None:
        """Resolve every URL again, all at once (one slow name does not hold up the others)."""
        await asyncio.gather(*(self._refresh(origin) for origin in self.origins))

    async def _refresh(self, origin: str) -> None:
        try:
            fresh = await self.resolver(origin)
        except OSError as exc:
            # A DNS hiccup must not empty a balancer's pool or a monitor's instances.
            if origin not in self.unresolved:
                log.warning("cannot resolve %s: %s", origin, exc)
            self.unresolved[origin] = str(exc)
            return
        if self.unresolved.pop(origin, None) is not None:
            log.info("%s resolves again", origin)
        self.addresses[origin] = fresh
