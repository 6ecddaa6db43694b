"""The ASGI path over the proxies' client: bodies both ways, answers streamed, HEAD, failures."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httptools
import pytest
from svc_common.forwarding.asgi import RelayInterrupted, forward
from svc_common.forwarding.failures import UpstreamError
from svc_common.forwarding.pool import UpstreamPool
from svc_common.forwarding.replies import request_head
from test_common_forwarding_pool import pool_for, serving


class Received:
    """One request as the upstream parsed it (httptools, as a server would)."""

    def __init__(self) -> None:
        self.method = b""
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.complete = asyncio.Event()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete.set()


async def parsed(reader: asyncio.StreamReader) -> Received:
    """Read one whole request, its body included."""
    received = Received()
    parser = httptools.HttpRequestParser(received)
    while not received.complete.is_set():
        data = await reader.read(65536)
        if not data:
            break
        parser.feed_data(data)
    received.method = parser.get_method()
    return received


class Sent:
    """What the ASGI client was sent."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


def scope(method: str, path: bytes = b"/itens") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path.decode(), "raw_path": path}


async def send_through(pool: UpstreamPool, method: str, body: Any, sent: Sent) -> int:
    return await forward(pool, scope(method), sent, headers=[], body=body, time_limit=2)


async def test_a_post_goes_with_its_length_and_the_answer_comes_back() -> None:
    seen: list[Received] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await parsed(reader))
        writer.write(
            b"HTTP/1.1 201 Created\r\ncontent-length: 7\r\nlocation: /itens/1\r\n\r\ncreated"
        )
        await writer.drain()

    async with serving(handler) as url:
        pool = pool_for(url)
        sent = Sent()
        status = await send_through(pool, "POST", b'{"nome": "x"}', sent)
        pool.close()
    assert (status, sent.status, sent.body) == (201, 201, b"created")
    assert (b"location", b"/itens/1") in sent.messages[0]["headers"]
    assert seen[0].method == b"POST"
    assert seen[0].headers[b"content-length"] == b"13"
    assert seen[0].body == b'{"nome": "x"}'


async def test_an_empty_post_says_its_length_is_zero() -> None:
    seen: list[Received] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await parsed(reader))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")

    async with serving(handler) as url:
        pool = pool_for(url)
        assert await send_through(pool, "POST", b"", Sent()) == 204
        pool.close()
    assert seen[0].headers[b"content-length"] == b"0"


async def test_a_body_that_comes_in_pieces_goes_chunked_and_arrives_whole() -> None:
    seen: list[Received] = []
    pieces = [b"a" * 70_000, b"b" * 3, b"c" * 200_000]

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            await asyncio.sleep(0)
            yield piece

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await parsed(reader))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    async with serving(handler) as url:
        pool = pool_for(url)
        assert await send_through(pool, "PUT", body(), Sent()) == 200
        pool.close()
    assert seen[0].headers[b"transfer-encoding"] == b"chunked"
    assert seen[0].body == b"".join(pieces)


async def test_a_large_answer_streams_back_whole_with_the_upstream_paused_meanwhile() -> None:
    size = 3 * 1024 * 1024

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await parsed(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"z" * 65536)
            await writer.drain()

    class SlowClient(Sent):
        async def __call__(self, message: dict[str, Any]) -> None:
            await asyncio.sleep(0.001)  # a client reading slower than the upstream writes
            await super().__call__(message)

    async with serving(handler) as url:
        pool = pool_for(url)
        sent = SlowClient()
        assert await send_through(pool, "GET", b"", sent) == 200
        pool.close()
    assert len(sent.body) == size
    assert len(sent.messages) > 3, "relayed in pieces, not held whole"
    assert sent.messages[-1] == {"type": "http.response.body", "body": b""}


async def test_a_head_answer_ends_with_its_head_and_its_connection_is_not_reused() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with serving(handler) as url:
        pool = pool_for(url)
        for _ in range(2):
            sent = Sent()
            assert await send_through(pool, "HEAD", b"", sent) == 200
            assert sent.body == b""
            assert (b"content-length", b"1234") in sent.messages[0]["headers"]
        pool.close()
    assert connections == 2


async def test_an_answer_broken_off_after_it_started_interrupts_the_relay() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await parsed(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n" + b"x" * 100_000)
        await writer.drain()
        writer.close()

    async with serving(handler) as url:
        pool = pool_for(url)
        sent = Sent()
        with pytest.raises(RelayInterrupted):
            await send_through(pool, "GET", b"", sent)
        pool.close()
    assert sent.status == 200


async def test_a_small_answer_broken_off_is_still_a_failure_the_proxy_may_retry() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await parsed(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf")
        await writer.drain()
        writer.close()

    async with serving(handler) as url:
        pool = pool_for(url)
        sent = Sent()
        with pytest.raises(UpstreamError) as failure:
            await send_through(pool, "GET", b"", sent)
        pool.close()
    assert sent.messages == [], "nothing reached the client"
    assert failure.value.answered


async def test_a_post_never_waits_behind_the_lane_s_pipelined_gets() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while data := await reader.read(65536):
            # One answer per request line that arrived (pipelined GETs come together).
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok" * data.count(b" HTTP/1.1\r\n")
            )

    async with serving(handler) as url:
        pool = pool_for(url)
        get = request_head(b"/x", pool.host, [])
        await pool.get(get, time_limit=2)  # one idle connection
        gets = [asyncio.ensure_future(pool.get(get, time_limit=2)) for _ in range(3)]
        await asyncio.sleep(0)  # the gets share one connection, filling it
        post = asyncio.ensure_future(send_through(pool, "POST", b"{}", Sent()))
        await asyncio.gather(*gets, post)
        pool.close()
    assert connections == 2, "the POST took a connection of its own"


async def test_a_100_continue_before_the_answer_is_passed_over() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await parsed(reader)
        writer.write(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"
        )

    async with serving(handler) as url:
        pool = pool_for(url)
        sent = Sent()
        assert await send_through(pool, "POST", b"{}", sent) == 201
        pool.close()
    assert sent.body == b"ok"
