"""A small HTTP/1.1 client for the fast lane: keep-alive connections to one upstream.

aiohttp's request path (URL objects, tracing, cookie and timeout machinery, a response
object and stream per call) costs more than the rest of a forwarding hop put together. The
fast lane only ever sends a bodiless GET and wants the whole answer, so this client writes
the request bytes the caller built on a pooled connection and parses the answer with
httptools, the parser uvicorn uses.
"""

import asyncio
import errno
import ssl
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import httptools

# Bigger answers are refused rather than held in memory (the lane buffers whole answers).
MAX_BODY_BYTES = 8 * 1024 * 1024
# A reset with our request still unread in the upstream's buffer: it never saw the request.
_UNREAD_RESETS = frozenset({errno.ECONNRESET, errno.EPIPE})


class UpstreamError(Exception):
    """A try with no complete answer: `reason` is connect, reset or timeout; `sent` says
    whether the upstream may have seen the request."""

    def __init__(self, reason: str, error: str, *, sent: bool) -> None:
        super().__init__(f"{reason}: {error}")
        self.reason = reason
        self.error = error
        self.sent = sent


class Reply:
    """One complete answer; header names are lower-case."""

    __slots__ = ("body", "headers", "keep_alive", "status")

    def __init__(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


def request_head(target: bytes, host: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A bodiless GET for target, with these headers."""
    out = [b"GET ", target, b" HTTP/1.1\r\nhost: ", host, b"\r\n"]
    for name, value in headers:
        out += (name, b": ", value, b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; requests of the same moment may share it, pipelined."""

    def __init__(self, pool: "UpstreamPool") -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        # Oldest first: HTTP/1.1 answers come in the order the requests went.
        self.waiters: deque[asyncio.Future[Reply]] = deque()
        self.outbox: list[bytes] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.answered = False  # any byte of an answer arrived since the last complete one
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def send(self, data: bytes) -> "asyncio.Future[Reply]":
        """Queue one request; it leaves with the others of this loop iteration, in one write.

        The future gets its answer."""
        waiter = self.pool.loop.create_future()
        self.waiters.append(waiter)
        if not self.outbox:
            self.pool.loop.call_soon(self._flush)
        self.outbox.append(data)
        return waiter

    def _flush(self) -> None:
        outbox, self.outbox = self.outbox, []
        self.pool.flushed(self)
        if self.transport is not None and not self.closed and outbox:
            self.transport.write(outbox[0] if len(outbox) == 1 else b"".join(outbox))

    def data_received(self, data: bytes) -> None:
        """Feed the parser; an answer nobody asked for, or a malformed one, ends the link."""
        self.answered = True
        if not self.waiters:
            self._fail(UpstreamError("reset", "unsolicited answer", sent=True))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # what a callback of ours raised, if one did
            if not isinstance(cause, UpstreamError):
                cause = UpstreamError("reset", f"malformed answer: {exc}", sent=True)
            self._fail(cause)

    def on_message_begin(self) -> None:
        """httptools callback."""
        self.headers, self.body, self.size = [], [], 0

    def on_header(self, name: bytes, value: bytes) -> None:
        """httptools callback."""
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        """httptools callback."""
        self.size += len(body)
        if self.size > MAX_BODY_BYTES:
            raise UpstreamError("reset", "answer too large", sent=True)
        self.body.append(body)

    def on_message_complete(self) -> None:
        """httptools callback: hand the answer to the oldest waiter."""
        self.answered = False
        waiter = self.waiters.popleft()
        keep_alive = self.parser.should_keep_alive()
        if not waiter.done():
            body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
            status = self.parser.get_status_code()
            waiter.set_result(Reply(status, self.headers, body, keep_alive))
        if not keep_alive:
            self._fail(UpstreamError("reset", "closed by upstream", sent=True))
        elif not self.waiters:
            self.pool.idle(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Whoever waits learns whether the upstream can have seen their requests."""
        self.closed = True
        self.pool.forget(self)
        unread = isinstance(exc, OSError) and exc.errno in _UNREAD_RESETS
        name = type(exc).__name__ if exc else "closed by upstream"
        self._fail(UpstreamError("reset", name, sent=self.answered or not unread))

    def _fail(self, error: UpstreamError) -> None:
        """Every waiter fails: the first with `error`; the ones behind it may have been read."""
        waiters, self.waiters = self.waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
            error = UpstreamError(error.reason, error.error, sent=True)
        self.close()

    def close(self) -> None:
        """Drop the connection."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class UpstreamPool:
    """Keep-alive connections to one http(s)://host:port.

    A request takes the connection that requests of this same loop iteration are already
    going out on (up to `depth` on it), else an idle one (most recent first), else a new
    one; so requests that arrive together leave together, in one write the upstream reads
    at once, while requests at other moments never wait behind each other.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float,
        keepalive_timeout: float,
        limit: int,
        host_header: str | None = None,
        depth: int = 8,
    ) -> None:
        parts = urlsplit(url)
        self.tls = parts.scheme == "https"
        self.hostname = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.tls else 80)
        self.host = (host_header or parts.netloc).encode("idna")
        self.connect_timeout = connect_timeout
        self.keepalive_timeout = keepalive_timeout
        self.limit = limit
        self.depth = depth
        self.loop = asyncio.get_running_loop()
        self._ssl = ssl.create_default_context() if self.tls else None
        self._idle: list[_Connection] = []
        self._filling: _Connection | None = None  # has a write queued this iteration
        self._busy: set[_Connection] = set()
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def get(self, data: bytes, *, time_limit: float, retry_stale: bool = False) -> Reply:
        """Send one request and wait up to time_limit seconds for the whole answer.

        retry_stale, for an idempotent request, sends it once more on a new connection when
        a reused one broke before answering: the race every keep-alive pool has with the
        upstream's idle timeout, or an upstream that closed after the answer before it."""
        connection, reused = await self._acquire()
        try:
            return await self._exchange(connection, data, time_limit)
        except UpstreamError as exc:
            if not (retry_stale and reused and exc.reason == "reset"):
                raise
        connection, _ = await self._acquire(fresh=True)
        return await self._exchange(connection, data, time_limit)

    async def _exchange(self, connection: _Connection, data: bytes, time_limit: float) -> Reply:
        waiter = connection.send(data)
        timer = self.loop.call_later(time_limit, self._time_out, connection, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            connection.close()  # its answer would go to the next request
            raise
        finally:
            timer.cancel()

    @staticmethod
    def _time_out(connection: _Connection, waiter: "asyncio.Future[Reply]") -> None:
        if not waiter.done():
            waiter.set_exception(UpstreamError("timeout", "no answer in time", sent=True))
            # Its answer may still come and would go to the next request: the link is spent.
            connection.close()

    async def _acquire(self, *, fresh: bool = False) -> tuple[_Connection, bool]:
        while True:
            filling = self._filling
            if (
                filling is not None
                and not fresh
                and not filling.closed
                and len(filling.waiters) < self.depth
            ):
                return filling, True
            now = self.loop.time()
            while self._idle and not fresh:
                connection = self._idle.pop()
                if not connection.closed and now - connection.idle_since < self.keepalive_timeout:
                    self._take(connection)
                    return connection, True
                connection.close()
            if self._open < self.limit:
                break
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            await waiter
        self._open += 1
        try:
            _, connection = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: _Connection(self),
                    self.hostname,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.hostname if self.tls else None,
                ),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            self._open -= 1
            self._wake()
            raise UpstreamError("connect", type(exc).__name__, sent=False) from exc
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        self._take(connection)
        return connection, False

    def _take(self, connection: _Connection) -> None:
        self._busy.add(connection)
        self._filling = connection

    def flushed(self, connection: _Connection) -> None:
        """The connection's queued requests went out: later ones start a new write."""
        if self._filling is connection:
            self._filling = None

    def idle(self, connection: _Connection) -> None:
        """Every answer is in: the connection may be reused."""
        self._busy.discard(connection)
        connection.idle_since = self.loop.time()
        self._idle.append(connection)
        self._wake()

    def forget(self, connection: _Connection) -> None:
        """A connection closed: it no longer counts against the limit."""
        if connection in self._idle:
            self._idle.remove(connection)
        self._busy.discard(connection)
        if self._filling is connection:
            self._filling = None
        self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        """Close every connection (lifespan end)."""
        for connection in [*self._idle, *self._busy]:
            connection.close()
        self._idle.clear()
