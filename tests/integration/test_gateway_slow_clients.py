"""Slow clients (slowloris) against a real gateway: half-sent requests are closed in time,
and everyone else is served meanwhile."""

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import OUTPUT
from tests.integration.gateways import gateways
from tests.integration.stack import Stack

READ_TIMEOUT = 2.0
HALF_REQUESTS = 2_000
# What the gateway may take beyond READ_TIMEOUT to close them all, on a busy 2-core machine.
SLACK = 3.0


@pytest.fixture(scope="module")
def gateway() -> Iterator[Stack]:
    """One gateway with a short READ_TIMEOUT (no balancer: only /saude is asked)."""
    with gateways(OUTPUT / "gateway-slow-clients", READ_TIMEOUT=str(READ_TIMEOUT)) as (one,):
        yield one


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter, float]


async def _half_request(host: str, port: int) -> Connection:
    """A connection with half a request head sent (the writer is kept: dropping it closes)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /saude HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")  # never finished
    await writer.drain()
    return reader, writer, time.monotonic()


async def _closed_after(reader: asyncio.StreamReader, sent: float) -> tuple[bytes, float]:
    """What the gateway wrote before closing, and how long after the half request it closed."""
    data = await asyncio.wait_for(reader.read(), READ_TIMEOUT + SLACK + 5)
    return data, time.monotonic() - sent


async def test_half_sent_requests_are_closed_in_time_while_others_are_served(
    gateway: Stack,
) -> None:
    url = gateway.url("api_gateway")
    host, port = url.removeprefix("http://").split(":")
    opened = await asyncio.gather(*(_half_request(host, int(port)) for _ in range(HALF_REQUESTS)))
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        served = [(await client.get("/saude")).status_code for _ in range(20)]
    outcomes = await asyncio.gather(*(_closed_after(r, sent) for r, _, sent in opened))
    assert served == [200] * 20, "normal clients are served while the half requests hang"
    slowest = max(took for _, took in outcomes)
    assert slowest <= READ_TIMEOUT + SLACK, f"the last half request was closed after {slowest}s"
    assert {data[:13] for data, _ in outcomes} == {b"HTTP/1.1 408 "}
    print(f"SLOW CLIENTS {HALF_REQUESTS} half requests closed within {slowest:.2f}s")


async def test_a_body_that_stalls_gets_408_and_a_closed_connection(gateway: Stack) -> None:
    host, port = gateway.url("api_gateway").removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /login HTTP/1.1\r\nHost: gateway\r\ncontent-type: application/json\r\n"
        b'content-length: 100\r\n\r\n{"username": '
    )
    await writer.drain()
    data, took = await _closed_after(reader, time.monotonic())
    assert data.startswith(b"HTTP/1.1 408 ")
    assert b'"status":"error"' in data
    assert READ_TIMEOUT - 0.5 <= took <= READ_TIMEOUT + SLACK


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer(
    gateway: Stack,
) -> None:
    host, port = gateway.url("api_gateway").removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    data, took = await _closed_after(reader, time.monotonic())
    writer.close()
    assert data == b""
    assert took <= READ_TIMEOUT + SLACK
