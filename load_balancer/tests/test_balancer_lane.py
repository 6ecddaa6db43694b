"""The balancer's fast lane inside a real uvicorn server, against raw loopback backends."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from balancer_fakes import balancer_for
from fastapi import FastAPI
from load_balancer.lane import BalancerLane
from load_balancer.proxy import BalancerMiddleware
from svc_common.forwarding.connection import MAX_BODY_BYTES
from svc_common.serving.lane import LANE
from svc_common.serving.protocol import LaneProtocol

_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s"
# Bigger than the lane's client holds (MAX_BODY_BYTES): the ASGI path streams it.
BIG = b"x" * (MAX_BODY_BYTES + 1024)


class RawBackend:
    """Answers every GET with its name; on /close it reads the request and closes, on /hang it
    never answers (when `fails`)."""

    def __init__(self, name: str, *, fails: bool = False) -> None:
        self.name = name.encode()
        self.fails = fails
        self.paths: list[str] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> "RawBackend":
        """Listen on a free loopback port."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                path = head.split(b" ")[1].decode()
                self.paths.append(path)
                if self.fails and path == "/close":
                    break
                if self.fails and path == "/hang":
                    await asyncio.sleep(3600)
                body = BIG if path == "/big" else self.name
                writer.write(_ANSWER % (len(body), body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        """Stop listening."""
        assert self.server is not None
        self.server.close()


class CountingLane(BalancerLane):
    """Counts the requests answered by respond(), in a task, rather than from start()."""

    in_tasks = 0

    async def respond(self, request: Any) -> Any:
        self.in_tasks += 1
        return await super().respond(request)


@asynccontextmanager
async def lane_over(urls: list[str], **settings: Any) -> AsyncIterator[tuple[str, CountingLane]]:
    """uvicorn with the fast-lane protocol and a balancer over these backends."""
    balancer, _ = balancer_for(urls, **settings)
    lane = CountingLane(balancer)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {LANE: lane}
        balancer.close()

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(BalancerMiddleware, balancer=balancer)  # the ASGI path
    config = uvicorn.Config(app, host="127.0.0.1", port=0, http=LaneProtocol, log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", lane
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def backends() -> AsyncIterator[tuple[RawBackend, RawBackend]]:
    """A backend that fails on /close and /hang, and one that always answers."""
    pair = (await RawBackend("a", fails=True).start(), await RawBackend("b").start())
    yield pair
    for backend in pair:
        await backend.close()


async def test_once_connections_are_open_gets_go_out_from_the_parser_callback_in_turns(
    backends: tuple[RawBackend, RawBackend],
) -> None:
    a, b = backends
    async with lane_over([a.url, b.url]) as (url, lane), httpx.AsyncClient(base_url=url) as http:
        first = [(await http.get("/warm")).text for _ in range(2)]
        assert lane.in_tasks == 2, "no connection was open yet: each took the awaited path"
        later = [(await http.get(f"/n{n}")).text for n in range(4)]
    assert first + later == ["a", "b"] * 3
    assert lane.in_tasks == 2, "answered from start(), with no task"
    assert a.paths == ["/warm", "/n0", "/n2"]


async def test_a_first_try_the_backend_read_and_dropped_is_retried_on_the_next_backend(
    backends: tuple[RawBackend, RawBackend],
) -> None:
    a, b = backends
    async with lane_over([a.url, b.url]) as (url, lane), httpx.AsyncClient(base_url=url) as http:
        await http.get("/warm")
        await http.get("/warm")
        answer = await http.get("/close")
        status = (await http.get("/status")).status_code
    assert (answer.status_code, answer.text) == (200, "b")
    assert a.paths.count("/close") == 1, "read by the first backend, which dropped it"
    assert b.paths.count("/close") == 1, "sent once more, to the next backend"
    assert lane.in_tasks == 2, "its first try went out from start(), on a reused connection"
    assert status == 404, "the balancer's own paths are not forwarded"


async def test_a_silent_first_try_times_out_and_the_get_moves_on(
    backends: tuple[RawBackend, RawBackend],
) -> None:
    a, b = backends
    async with (
        lane_over([a.url, b.url], try_timeout=0.3) as (url, _),
        httpx.AsyncClient(base_url=url) as http,
    ):
        await http.get("/warm")
        await http.get("/warm")
        answer = await http.get("/hang")
    assert (answer.status_code, answer.text) == (200, "b")
    assert a.paths[-1] == "/hang"


async def test_a_first_try_with_no_backend_left_to_try_is_a_502_in_the_envelope(
    backends: tuple[RawBackend, RawBackend],
) -> None:
    a, _ = backends
    async with lane_over([a.url]) as (url, _), httpx.AsyncClient(base_url=url) as http:
        await http.get("/warm")
        answer = await http.get("/close")
    assert answer.status_code == 502
    assert answer.json()["status"] == "error"


async def test_an_answer_too_big_for_the_lane_is_streamed_by_the_asgi_path_in_its_turn(
    backends: tuple[RawBackend, RawBackend],
) -> None:
    a, b = backends
    async with lane_over([a.url, b.url]) as (url, _):
        await httpx.AsyncClient(base_url=url).get("/warm")
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        # Pipelined: the big one first, a lane answer behind it must wait for its end.
        writer.write(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\nGET /after HTTP/1.1\r\nhost: x\r\n\r\n")
        first = await reader.readuntil(b"\r\n\r\n")
        length = int(first.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        second = await reader.readuntil(b"\r\n\r\n")
        writer.close()
    assert first.startswith(b"HTTP/1.1 200")
    assert body == BIG
    assert second.startswith(b"HTTP/1.1 200")
