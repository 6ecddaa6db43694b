"""DNS discovery: a URL's host name stands for every address it resolves to."""

import asyncio
import logging
import socket
from typing import Any

import pytest
from svc_common.discovery import Address, Discovery, resolve


def _answers(*ips: str) -> Any:
    """A getaddrinfo that answers these addresses for any name."""

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        family = {True: socket.AF_INET6, False: socket.AF_INET}
        return [(family[":" in ip], socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ips]

    return getaddrinfo


async def test_an_ip_address_is_its_own_one_address() -> None:
    [address] = await resolve("http://127.0.0.1:9102")
    assert address == Address("http://127.0.0.1:9102", name="http://127.0.0.1:9102")
    assert address.instance == "127.0.0.1:9102"


async def test_localhost_is_one_address_not_one_per_address_family() -> None:
    [address] = await resolve("http://localhost:9102")
    assert address.url == "http://127.0.0.1:9102"
    assert address.host_header == "localhost:9102"
    assert address.name == "http://localhost:9102 (127.0.0.1)"


async def test_a_name_with_several_addresses_stands_for_each_distinct_one_port_and_path_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", _answers("10.1.0.7", "10.1.0.5", "10.1.0.7"))
    addresses = await resolve("http://items.default.svc:9102/api")
    assert [a.url for a in addresses] == ["http://10.1.0.5:9102/api", "http://10.1.0.7:9102/api"]
    assert [a.instance for a in addresses] == ["10.1.0.5:9102", "10.1.0.7:9102"]
    assert {a.host_header for a in addresses} == {"items.default.svc:9102"}


async def test_ipv6_counts_only_for_a_name_without_ipv4_and_is_bracketed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", _answers("fd00::1", "10.1.0.5"))
    assert [a.url for a in await resolve("http://both:9102")] == ["http://10.1.0.5:9102"]
    monkeypatch.setattr(loop, "getaddrinfo", _answers("fd00::1"))
    [address] = await resolve("https://v6only")
    assert (address.url, address.instance) == ("https://[fd00::1]:443", "[fd00::1]:443")


async def test_a_failed_lookup_keeps_the_previous_addresses_and_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers: list[list[str] | None] = [["10.0.0.1", "10.0.0.2"]]

    async def resolver(origin: str) -> list[Address]:
        ips = answers[-1]
        if ips is None:
            raise OSError("Name or service not known")
        return [Address(f"http://{ip}:9102", name=ip) for ip in ips]

    discovery = Discovery(["http://items:9102", "http://items:9102"], resolver)
    assert discovery.origins == ["http://items:9102"]
    await discovery.refresh()
    before = discovery.addresses["http://items:9102"]
    assert [a.name for a in before] == ["10.0.0.1", "10.0.0.2"]

    answers.append(None)
    with caplog.at_level(logging.WARNING, logger="svc_common.discovery"):
        await discovery.refresh()
        await discovery.refresh()
    assert discovery.addresses["http://items:9102"] == before
    assert discovery.unresolved == {"http://items:9102": "Name or service not known"}
    assert len(caplog.records) == 1

    answers.append(["10.0.0.3"])
    await discovery.refresh()
    assert [a.name for a in discovery.addresses["http://items:9102"]] == ["10.0.0.3"]
    assert discovery.unresolved == {}


async def test_a_name_that_never_resolved_has_no_addresses_only_a_reason() -> None:
    async def nowhere(origin: str) -> list[Address]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    discovery = Discovery(["http://nowhere:9102"], nowhere)
    await discovery.refresh()
    assert discovery.addresses == {}
    assert "Name or service not known" in discovery.unresolved["http://nowhere:9102"]
