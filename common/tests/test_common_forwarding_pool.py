"""The proxies' HTTP/1.1 client (lane GETs) against small asyncio servers on loopback."""

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from svc_common.forwarding.connection import Connection
from svc_common.forwarding.failures import UpstreamError
from svc_common.forwarding.pool import UpstreamPool
from svc_common.forwarding.replies import request_head

OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A server on a free loopback port; yields its base URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request head (our client sends bodiless GETs only)."""
    return await reader.readuntil(b"\r\n\r\n")


def pool_for(url: str, **options: float) -> UpstreamPool:
    settings = {"connect_timeout": 1.0, "keepalive_timeout": 4.0, "limit": 8} | options
    return UpstreamPool(url, **settings)  # type: ignore[arg-type]


def get(pool: UpstreamPool, target: bytes = b"/x") -> bytes:
    return request_head(target, pool.host, [(b"x-request-id", b"abc")])


async def test_answers_come_back_whole_and_the_connection_is_reused() -> None:
    connections = 0
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                seen.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                return
            # Chunked, split over writes: the parser joins the pieces.
            writer.write(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n")
            writer.write(b"3\r\nabc\r\n")
            await writer.drain()
            writer.write(b"2\r\nde\r\n0\r\n\r\n")

    async with serving(handler) as url:
        pool = pool_for(url)
        for _ in range(3):
            reply = await pool.get(get(pool), time_limit=2)
            assert (reply.status, reply.body, reply.keep_alive) == (201, b"abcde", True)
            assert (b"x-a", b"1") in reply.headers, "names come lower-case"
        pool.close()
    assert connections == 1
    assert seen[0].startswith(b"GET /x HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"x-request-id: abc\r\n" in seen[0]


async def test_a_refused_connect_is_a_connect_failure_the_upstream_never_saw() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connects are refused
        pool = pool_for(f"http://127.0.0.1:{port}")
        with pytest.raises(UpstreamError) as failure:
            await pool.get(get(pool), time_limit=2)
    assert (failure.value.reason, failure.value.sent) == ("connect", False)


async def test_silence_past_the_time_limit_is_a_timeout_and_the_connection_is_dropped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with serving(handler) as url:
        pool = pool_for(url)
        with pytest.raises(UpstreamError) as failure:
            await pool.get(get(pool), time_limit=0.1)
        await asyncio.sleep(0.01)
        assert pool._open == 0, "a timed-out connection is not reused"
    assert (failure.value.reason, failure.value.sent) == ("timeout", True)


async def test_a_close_after_reading_the_request_is_a_reset_it_may_have_seen() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    async with serving(handler) as url:
        pool = pool_for(url)
        with pytest.raises(UpstreamError) as failure:
            await pool.get(get(pool), time_limit=2, resend=False)
    assert (failure.value.reason, failure.value.sent) == ("reset", True)
    assert failure.value.answered is False


async def test_an_unanswered_idempotent_request_is_sent_again_once_and_no_more() -> None:
    seen = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        await read_request(reader)
        seen += 1
        writer.close()

    async with serving(handler) as url:
        pool = pool_for(url)
        with pytest.raises(UpstreamError) as failure:
            await pool.get(get(pool), time_limit=2)
    assert seen == 2
    assert failure.value.reason == "reset"


async def test_requests_pipelined_behind_a_connection_close_answer_are_resent_and_answered() -> (
    None
):
    # nginx's keepalive_requests: the last answer a connection gives says Connection: close,
    # and the requests already sent behind it on that connection are never read. The first
    # connection closes after two answers; the next ones keep going.
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        last = 2 if connections == 1 else 100
        buffered = b""
        for served in range(1, last + 1):
            while b"\r\n\r\n" not in buffered:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                buffered += chunk
            head, buffered = buffered.split(b"\r\n\r\n", 1)
            target = head.split(b" ")[1]
            close = b"connection: close\r\n" if served == last else b""
            answer = b"HTTP/1.1 200 OK\r\n%scontent-length: %d\r\n\r\n"
            writer.write(answer % (close, len(target)) + target)
        await writer.drain()
        writer.close()

    async with serving(handler) as url:
        pool = pool_for(url)
        await pool.get(get(pool, b"/warm"), time_limit=2)  # one idle connection, one answer left
        targets = [f"/item/{n}".encode() for n in range(4)]
        replies = await asyncio.gather(*(pool.get(get(pool, t), time_limit=2) for t in targets))
        pool.close()
    assert [r.body for r in replies] == targets
    assert connections == 2, "the three left unanswered went out together on one new connection"


async def test_a_request_whose_answer_had_started_is_never_sent_again() -> None:
    seen = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        await read_request(reader)
        seen += 1
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
        await writer.drain()
        writer.close()

    async with serving(handler) as url:
        pool = pool_for(url)
        with pytest.raises(UpstreamError) as failure:
            await pool.get(get(pool), time_limit=2)
    assert seen == 1
    assert (failure.value.reason, failure.value.answered) == ("reset", True)


async def test_a_malformed_answer_fails_the_try() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")

    async with serving(handler) as url:
        pool = pool_for(url)
        with pytest.raises(UpstreamError) as failure:
            await pool.get(get(pool), time_limit=2)
    assert failure.value.reason == "reset"
    assert "malformed" in failure.value.error


async def test_a_request_on_a_keep_alive_connection_the_upstream_closed_goes_on_a_new_one() -> None:
    answered = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        await read_request(reader)
        answered += 1
        writer.write(OK)
        await writer.drain()
        if answered == 1:
            # Gone after the first answer, as an upstream's idle timeout would close it; the
            # client's next request on it meets a closed socket.
            writer.close()
            return
        await asyncio.sleep(1)

    async with serving(handler) as url:
        pool = pool_for(url)
        assert (await pool.get(get(pool), time_limit=2)).body == b"ok"
        await asyncio.sleep(0.05)
        reply = await pool.get(get(pool), time_limit=2)
        pool.close()
    assert (reply.status, answered) == (200, 2)


async def test_idle_connections_older_than_the_keepalive_time_are_not_reused() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(OK)

    async with serving(handler) as url:
        pool = pool_for(url, keepalive_timeout=0.05)
        await pool.get(get(pool), time_limit=2)
        await asyncio.sleep(0.1)
        await pool.get(get(pool), time_limit=2)
        pool.close()
    assert connections == 2


async def test_the_pool_limit_makes_extra_requests_wait_for_a_connection() -> None:
    open_now = most = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            while True:
                await read_request(reader)
                await asyncio.sleep(0.02)
                writer.write(OK)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            open_now -= 1

    async with serving(handler) as url:
        pool = pool_for(url, limit=2)
        replies = await asyncio.gather(*(pool.get(get(pool), time_limit=5) for _ in range(6)))
        pool.close()
    assert [r.status for r in replies] == [200] * 6
    assert most == 2


async def test_requests_of_the_same_moment_share_a_connection_and_answers_find_their_request() -> (
    None
):
    connections = reads = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections, reads
        connections += 1
        buffered = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            reads += 1
            buffered += chunk
            while b"\r\n\r\n" in buffered:
                head, buffered = buffered.split(b"\r\n\r\n", 1)
                target = head.split(b" ")[1]
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(target), target)
                )

    async with serving(handler) as url:
        pool = pool_for(url)
        await pool.get(get(pool, b"/warm"), time_limit=2)  # one idle connection now
        targets = [f"/item/{n}".encode() for n in range(5)]
        replies = await asyncio.gather(*(pool.get(get(pool, t), time_limit=2) for t in targets))
        pool.close()
    assert [r.body for r in replies] == targets
    assert connections == 1
    assert reads == 2, "the five left in one write"


async def warm_then_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers the warm-up request, then never again."""
    await read_request(reader)
    writer.write(OK)
    await asyncio.sleep(5)


async def test_a_timeout_spends_the_connection_and_fails_the_requests_behind_it_as_sent() -> None:
    async with serving(warm_then_silent) as url:
        pool = pool_for(url)
        await pool.get(get(pool, b"/warm"), time_limit=2)
        first = asyncio.ensure_future(pool.get(get(pool, b"/1"), time_limit=0.1))
        second = asyncio.ensure_future(pool.get(get(pool, b"/2"), time_limit=3, resend=False))
        results = await asyncio.gather(first, second, return_exceptions=True)
    assert [type(r) for r in results] == [UpstreamError, UpstreamError]
    assert isinstance(results[0], UpstreamError)
    assert isinstance(results[1], UpstreamError)
    assert (results[0].reason, results[1].reason) == ("timeout", "reset")
    assert results[1].sent, "it went out behind the first: the upstream may have read it"


async def test_an_idempotent_request_behind_a_timed_out_one_is_answered_on_a_new_connection() -> (
    None
):
    async with serving(warm_then_silent) as url:
        pool = pool_for(url)
        await pool.get(get(pool, b"/warm"), time_limit=2)
        first = asyncio.ensure_future(pool.get(get(pool, b"/1"), time_limit=0.1))
        second = asyncio.ensure_future(pool.get(get(pool, b"/2"), time_limit=3))
        results = await asyncio.gather(first, second, return_exceptions=True)
        pool.close()
    assert getattr(results[0], "reason", None) == "timeout"
    assert getattr(results[1], "body", None) == b"ok"


class RecordingTransport:
    """Stands in for a connection's transport: records each write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def abort(self) -> None:
        pass


async def test_a_connection_filled_to_the_depth_sends_at_once_not_at_the_iteration_end() -> None:
    pool = pool_for("http://127.0.0.1:9", depth=2)
    connection = Connection(pool)
    transport = RecordingTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    connection.send(b"one ", pool.loop.create_future(), time_limit=5, resend=False)
    assert transport.writes == [], "waits for the other requests of this iteration"
    connection.send(b"two ", pool.loop.create_future(), time_limit=5, resend=False)
    assert transport.writes == [b"one two "], "full: nothing more can join this write"
    await asyncio.sleep(0)
    assert transport.writes == [b"one two "], "not sent twice"
    connection.close()


async def test_a_request_behind_another_with_a_shorter_limit_times_out_on_its_own_time() -> None:
    async with serving(warm_then_silent) as url:
        pool = pool_for(url)
        await pool.get(get(pool, b"/warm"), time_limit=2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = asyncio.ensure_future(pool.get(get(pool, b"/1"), time_limit=3, resend=False))
        second = asyncio.ensure_future(pool.get(get(pool, b"/2"), time_limit=0.2))
        results = await asyncio.gather(first, second, return_exceptions=True)
        took = loop.time() - started
    assert [getattr(r, "reason", r) for r in results] == ["reset", "timeout"]
    assert took < 2, "the connection's one timer follows the soonest deadline, not the first"
