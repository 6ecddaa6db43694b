"""SIGTERM and kept-alive connections, on a real gateway: an idle connection is not closed at
once (a request sent on it then would be lost), but carries one more request, answered with
Connection: close, on the lane and on the ASGI path alike; one left idle closes after the
drain, and the process exits."""

import asyncio
import re
import signal
import time
from collections.abc import Iterator

import pytest
from svc_common.serving.protocol import IDLE_DRAIN_SECONDS

from tests.integration.conftest import OUTPUT
from tests.integration.gateways import gateways, token_for
from tests.integration.stack import Stack

# What a busy 2-core machine may add to the drain before the connection closes.
SLACK = 3.0


@pytest.fixture
def gateway(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A gateway of this test's own (it is stopped), with no balancer behind it."""
    # The case's own directory (its logs are kept): the parametrized ids tell the cases apart.
    case = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name.removeprefix("test_")).strip("-")
    with gateways(OUTPUT / f"gateway-drain-{case}") as (one,):
        yield one


def address(stack: Stack) -> tuple[str, int]:
    """The gateway's host and port."""
    host, port = stack.url("api_gateway").removeprefix("http://").split(":")
    return host, int(port)


async def ask(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, token: str
) -> tuple[int, dict[str, str]]:
    """One GET on a kept-alive connection: the answer's status and headers (body read)."""
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines if line)
    await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers


async def refused(host: str, port: int) -> bool:
    """Whether the listener is closed (uvicorn closes it, then drains the connections)."""
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return True
    writer.close()
    return False


async def signalled(stack: Stack) -> float:
    """SIGTERM to the gateway; returns once it refuses new connections (when it was sent)."""
    host, port = address(stack)
    sent = time.monotonic()
    stack.procs["api_gateway"].send_signal(signal.SIGTERM)
    while not await refused(host, port):
        assert time.monotonic() - sent < 10, "still accepting 10 s after SIGTERM"
        await asyncio.sleep(0.01)
    return sent


# /saude is answered by the ASGI app; /itens/1 by the lane (a 503: no balancer behind it).
@pytest.mark.parametrize(("path", "status"), [("/saude", 200), ("/itens/1", 503)])
async def test_after_sigterm_an_idle_connection_carries_one_more_request_then_closes(
    gateway: Stack, path: str, status: int
) -> None:
    token = await asyncio.to_thread(token_for, gateway)
    reader, writer = await asyncio.open_connection(*address(gateway))
    first, headers = await ask(reader, writer, path, token)
    assert (first, headers.get("connection")) == (status, None)  # kept alive
    sent = await signalled(gateway)
    last, headers = await ask(reader, writer, path, token)
    assert time.monotonic() - sent < IDLE_DRAIN_SECONDS + SLACK
    assert (last, headers.get("connection")) == (status, "close")
    assert await asyncio.wait_for(reader.read(), 10) == b""  # then the gateway closes it
    writer.close()
    code = await asyncio.to_thread(gateway.procs["api_gateway"].wait, 20)
    assert code == -signal.SIGTERM


async def test_a_connection_left_idle_closes_when_the_drain_ends_and_the_process_exits(
    gateway: Stack,
) -> None:
    token = await asyncio.to_thread(token_for, gateway)
    reader, writer = await asyncio.open_connection(*address(gateway))
    assert (await ask(reader, writer, "/saude", token))[0] == 200
    sent = await signalled(gateway)
    assert await asyncio.wait_for(reader.read(), 10) == b""
    closed_after = time.monotonic() - sent
    assert IDLE_DRAIN_SECONDS * 0.8 <= closed_after < IDLE_DRAIN_SECONDS + SLACK, closed_after
    writer.close()
    code = await asyncio.to_thread(gateway.procs["api_gateway"].wait, 20)
    assert code == -signal.SIGTERM
