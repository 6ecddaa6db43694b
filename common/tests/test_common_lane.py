"""The fast lane inside a real uvicorn server: what it takes, what it leaves to ASGI."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI, Request
from prometheus_client import REGISTRY
from svc_common.logging import request_id_var
from svc_common.serving.lane import LANE, Deliver, LaneHandler, LaneRequest, RawAnswer
from svc_common.serving.protocol import LaneProtocol


class EchoLane(LaneHandler):
    """Takes GET /lane/...; answers what it saw."""

    extra_headers = ((b"x-served-by", b"echo"),)

    def __init__(self) -> None:
        self.request_ids: list[str] = []
        self.gate: asyncio.Event | None = None
        self.started: list[str] = []

    def accepts(self, request: LaneRequest) -> bool:
        if not request.path.startswith("/lane/"):
            return False
        request.route = "/lane/{x}"
        return True

    def start(self, request: LaneRequest, deliver: Deliver) -> bool:
        """/lane/start/...: answered from here (now, or from a timer callback), with no task."""
        if not request.path.startswith("/lane/start/"):
            return False
        if request.path == "/lane/start/crash":
            raise RuntimeError("start boom")
        answer = RawAnswer(200, [], b"started " + request.target)
        if request.path == "/lane/start/now":
            deliver(answer)
        else:
            asyncio.get_running_loop().call_later(0.1, deliver, answer)
        return True

    async def respond(self, request: LaneRequest) -> RawAnswer:
        self.request_ids.append(request_id_var.get())
        self.started.append(request.path)
        if self.gate is not None and "slow" in request.path:
            await self.gate.wait()
        if request.path == "/lane/crash":
            raise RuntimeError("boom")
        if request.path == "/lane/304":
            return RawAnswer(304, [(b"etag", b'"1"')], b"")
        body = b"lane " + request.target
        return RawAnswer(200, [(b"content-type", b"text/plain")], body)


def app_with(lane: EchoLane) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {LANE: lane}

    app = FastAPI(lifespan=lifespan)

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def asgi(path: str, request: Request) -> dict[str, str]:
        return {"asgi": path, "method": request.method}

    return app


@asynccontextmanager
async def served(
    app: FastAPI, *, protocol: type[LaneProtocol] = LaneProtocol, keep_alive: float = 5.0
) -> AsyncIterator[str]:
    """uvicorn serving app with this protocol on a free loopback port; its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        http=protocol,
        log_config=None,
        timeout_keep_alive=keep_alive,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def running(lane: EchoLane, *, keep_alive: float = 5.0) -> AsyncIterator[str]:
    """uvicorn with the lane protocol and this lane on a free loopback port."""
    async with served(app_with(lane), keep_alive=keep_alive) as url:
        yield url


def complete_answers(data: bytes) -> int:
    """How many whole answers (head and Content-Length body) data holds."""
    count = 0
    while b"\r\n\r\n" in data:
        head, rest = data.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            break
        count += 1
        data = rest[length:]
    return count


async def raw_exchange(url: str, data: bytes, *, until: int = 1) -> bytes:
    """Write raw bytes and read until `until` answers have come back (or the peer closed)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    received = b""
    while complete_answers(received) < until:
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        if not chunk:
            break
        received += chunk
    writer.close()
    return received


LANE_LABELS = {"method": "GET", "route": "/lane/{x}", "status": "200"}


async def test_an_accepted_get_is_answered_by_the_lane_with_request_id_and_metrics() -> None:
    lane = EchoLane()
    before = REGISTRY.get_sample_value("http_requests_total", LANE_LABELS) or 0
    async with running(lane) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/lane/a%20b?q=1", headers={"X-Request-ID": "req-7"})
    assert response.status_code == 200
    assert response.text == "lane /lane/a%20b?q=1", "path and query as the client encoded them"
    assert response.headers["x-request-id"] == "req-7"
    assert response.headers["x-served-by"] == "echo"
    assert response.headers["content-length"] == str(len(response.content))
    assert "date" in response.headers
    assert lane.request_ids == ["req-7"], "log lines of the lane's task carry the request id"
    assert REGISTRY.get_sample_value("http_requests_total", LANE_LABELS) == before + 1


async def test_declined_paths_other_methods_and_bodies_take_the_asgi_path() -> None:
    lane = EchoLane()
    async with running(lane) as url, httpx.AsyncClient(base_url=url) as client:
        declined = await client.get("/other")
        post = await client.post("/lane/x", json={})
        with_body = await client.request("GET", "/lane/x", content=b"{}")
    assert declined.json() == {"asgi": "other", "method": "GET"}
    assert post.json() == {"asgi": "lane/x", "method": "POST"}
    assert with_body.json() == {"asgi": "lane/x", "method": "GET"}
    assert lane.request_ids == []


async def test_a_crash_in_the_lane_is_a_500_in_the_envelope(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running(EchoLane()) as url, httpx.AsyncClient(base_url=url) as client:
        with caplog.at_level(logging.ERROR):
            response = await client.get("/lane/crash")
    assert response.status_code == 500
    assert response.json() == {"status": "error", "data": None, "message": "Internal server error"}
    assert "boom" in caplog.text


class _RequestIdOnRecord(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


async def test_a_lane_that_starts_without_a_task_answers_in_order_and_logs_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.handler.addFilter(_RequestIdOnRecord())
    async with running(EchoLane()) as url:
        with caplog.at_level(logging.INFO, logger="access"):
            received = await raw_exchange(
                url,
                b"GET /lane/start/later HTTP/1.1\r\nhost: x\r\nx-request-id: r-1\r\n\r\n"
                b"GET /lane/start/now HTTP/1.1\r\nhost: x\r\nx-request-id: r-2\r\n\r\n",
                until=2,
            )
    later, now = received.index(b"started /lane/start/later"), received.index(b"started /lane/st")
    assert later == now, "the answer delivered later still leaves first"
    assert b"x-request-id: r-1\r\n" in received
    assert b"x-request-id: r-2\r\n" in received
    lines = {r.getMessage().split()[1]: r.request_id for r in caplog.records if r.name == "access"}
    assert lines == {"/lane/start/later": "r-1", "/lane/start/now": "r-2"}, (
        "access lines carry the id, though delivered outside the request's context"
    )


async def test_a_crash_in_start_is_a_500_in_the_envelope() -> None:
    async with running(EchoLane()) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/lane/start/crash")
        after = await client.get("/lane/start/now")
    assert response.status_code == 500
    assert response.json()["message"] == "Internal server error"
    assert after.text == "started /lane/start/now", "the connection goes on"


async def test_a_304_carries_no_content_length() -> None:
    async with running(EchoLane()) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/lane/304")
    assert response.status_code == 304
    assert "content-length" not in response.headers
    assert response.headers["etag"] == '"1"'


async def test_pipelined_requests_are_answered_in_order_across_lane_and_asgi() -> None:
    lane = EchoLane()
    lane.gate = asyncio.Event()
    async with running(lane) as url:
        exchange = asyncio.create_task(
            raw_exchange(
                url,
                b"GET /lane/slow-first HTTP/1.1\r\nhost: x\r\n\r\n"
                b"GET /second HTTP/1.1\r\nhost: x\r\n\r\n",
                until=2,
            )
        )
        await asyncio.sleep(0.1)  # the lane's answer is held back: the ASGI one must wait
        lane.gate.set()
        received = await exchange
    first = received.index(b"lane /lane/slow-first")
    second = received.index(b'{"asgi":"second"')
    assert first < second


async def test_connection_close_from_the_client_is_honoured() -> None:
    async with running(EchoLane()) as url:
        received = await raw_exchange(
            url, b"GET /lane/x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in received


async def test_pipelined_lane_requests_run_together_and_answer_in_order() -> None:
    lane = EchoLane()
    lane.gate = asyncio.Event()
    async with running(lane) as url:
        exchange = asyncio.create_task(
            raw_exchange(
                url,
                b"GET /lane/slow-1 HTTP/1.1\r\nhost: x\r\n\r\n"
                b"GET /lane/2 HTTP/1.1\r\nhost: x\r\n\r\n"
                b"GET /lane/3 HTTP/1.1\r\nhost: x\r\n\r\n",
                until=3,
            )
        )
        await asyncio.sleep(0.1)
        assert lane.started == ["/lane/slow-1", "/lane/2", "/lane/3"], "all three are running"
        lane.gate.set()
        received = await exchange
    order = [received.index(b"lane /lane/" + name) for name in (b"slow-1", b"2", b"3")]
    assert order == sorted(order), "answers leave in the order the requests came"


async def test_an_idle_connection_closes_a_keep_alive_time_after_its_last_answer() -> None:
    request = b"GET /lane/a HTTP/1.1\r\nhost: x\r\n\r\n"
    async with running(EchoLane(), keep_alive=1.0) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        opened = asyncio.get_running_loop().time()
        for pause in (0.0, 0.7, 0.7):  # the last request comes after the first answer's timer
            await asyncio.sleep(pause)
            writer.write(request)
            answer = await asyncio.wait_for(reader.readuntil(b"lane /lane/a"), 5)
            assert answer.startswith(b"HTTP/1.1 200"), "still open: idle less than 1 s"
        answered = asyncio.get_running_loop().time()
        assert answered - opened > 1.0
        assert await asyncio.wait_for(reader.read(), 5) == b"", "closed once idle for 1 s"
        closed = asyncio.get_running_loop().time()
        writer.close()
    assert 0.9 < closed - answered < 2.5


async def test_bytes_that_are_not_http_get_a_400_in_the_envelope_and_the_connection_closes() -> (
    None
):
    async with running(EchoLane()) as url:
        answer = await raw_exchange(
            url, b"GET /lane/a HTTP/1.1\r\nhost: x\r\ncontent-length: uv]Wq\r\n\r\n"
        )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"content-type: application/json" in head
    assert b"connection: close" in head
    assert orjson.loads(body) == {
        "status": "error",
        "data": None,
        "message": "Invalid HTTP request received.",
    }
