"""A small HTTP/1.1 client for a proxy: keep-alive connections to one upstream, one pool for
the lane and the ASGI path.

aiohttp's request path (URL objects, tracing, cookie and timeout machinery, a response
object and stream per call) costs more than the rest of a forwarding hop put together. This
client writes the request bytes the caller built on a pooled connection and parses the answer
with httptools, the parser uvicorn uses: the lane's GETs are pipelined and answered whole
(get, send_now); anything else goes on a connection of its own and its answer streams back
(stream).
"""

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from svc_common.forwarding.connection import Connection
from svc_common.forwarding.failures import UpstreamError
from svc_common.forwarding.replies import Reply, StreamedReply, Waiter

# How long a proxy keeps an idle upstream connection: below the idle timeout of any upstream
# it may face (uvicorn's default is 5 s; ours is 75 s, nginx's 75 s), so the proxy closes an
# idle connection first and never writes a request on one the upstream is closing. Both of a
# proxy's clients use it.
IDLE_SECONDS = 4.0


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
        self._idle: list[Connection] = []
        self._filling: Connection | None = None  # has a write queued this iteration
        self._busy: set[Connection] = set()
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._resending: set[asyncio.Task[None]] = set()

    async def get(
        self, data: bytes, *, time_limit: float, resend: bool = True, fresh: bool = False
    ) -> Reply:
        """Send one request and wait up to time_limit seconds for the whole answer.

        resend (an idempotent request): sent once more on a fresh connection if the one it
        went out on closed before any of its answer came, the race every keep-alive pool has
        with an upstream's idle timeout or request limit (nginx keepalive_requests). fresh:
        on a new connection (a caller resending by its own policy)."""
        connection, _ = await self._acquire(fresh=fresh)
        waiter: asyncio.Future[Reply] = self.loop.create_future()
        connection.send(data, waiter, time_limit=time_limit, resend=resend)
        return await waiter

    def send_now(self, data: bytes, waiter: Waiter, *, time_limit: float, resend: bool) -> bool:
        """Send on a connection that is ready (no await); False when there is none: use get().
        The waiter gets the answer, or an UpstreamError."""
        connection = self._ready()
        if connection is None:
            return False
        connection.send(data, waiter, time_limit=time_limit, resend=resend)
        return True

    async def stream(
        self,
        head: bytes,
        body: bytes | AsyncIterator[bytes] = b"",
        *,
        time_limit: float,
        resend: bool = False,
        fresh: bool = False,
        head_only: bool = False,
        body_time_limit: float | None = None,
    ) -> StreamedReply:
        """Send a request with its body (whole, or chunked as it comes) on a connection no
        other request shares, and hand back its answer as it arrives.

        resend: the request may go out again on a fresh connection if this one closes before
        any of the answer arrives (a whole body only). head_only: a HEAD, whose answer has no
        body. body_time_limit: from now, how long the body may take once the head is in.
        UpstreamError when nothing could be sent; the reply carries later failures."""
        connection, _ = await self._acquire(fresh=fresh, exclusive=True)
        body_deadline = None if body_time_limit is None else self.loop.time() + body_time_limit
        reply = StreamedReply(head_only=head_only, body_deadline=body_deadline)
        if isinstance(body, bytes):
            connection.send(head + body, reply, time_limit=time_limit, resend=resend)
            connection.flush()
            return reply
        connection.send(head, reply, time_limit=time_limit, resend=False)
        connection.flush()
        try:
            async for chunk in body:
                if connection.closed:
                    break  # the reply has the failure
                if chunk:
                    connection.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await connection.drain()
            connection.write(b"0\r\n\r\n")
        except BaseException:
            connection.close()  # a body cut short must not pass for a whole one
            raise
        return reply

    def resend(self, requests: list[tuple[bytes, Waiter, float, UpstreamError]]) -> None:
        """Send again, together on one fresh connection, requests a closed connection left
        unanswered: (data, waiter, deadline on the loop's clock, the error they met)."""
        task = self.loop.create_task(self._resend(requests))
        self._resending.add(task)
        task.add_done_callback(self._resending.discard)

    async def _resend(self, requests: list[tuple[bytes, Waiter, float, UpstreamError]]) -> None:
        try:
            connection, _ = await self._acquire(fresh=True)
        except UpstreamError:
            # Nothing reached the upstream this time: each fails as it first did.
            for _, waiter, _, error in requests:
                if not waiter.done():
                    waiter.set_exception(error)
            return
        now = self.loop.time()
        for data, waiter, deadline, error in requests:
            if waiter.done():
                continue
            if deadline <= now:
                waiter.set_exception(error)
            else:
                connection.send(data, waiter, time_limit=deadline - now, resend=False)

    def _ready(self) -> Connection | None:
        """The connection requests of this moment go out on, else the latest idle one."""
        filling = self._filling
        if filling is not None and not filling.closed and len(filling.waiters) < self.depth:
            return filling
        connection = self._idle_one()
        if connection is not None:
            self._filling = connection
        return connection

    def _idle_one(self) -> Connection | None:
        """The latest idle connection still young enough to reuse, now busy."""
        now = self.loop.time()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < self.keepalive_timeout:
                self._busy.add(connection)
                return connection
            connection.close()
        return None

    async def _acquire(
        self, *, fresh: bool = False, exclusive: bool = False
    ) -> tuple[Connection, bool]:
        """A connection to send on, and whether it was in use before; exclusive: one no other
        request of this moment joins (pipelining stays with the lane's GETs)."""
        while True:
            ready = None if fresh else self._idle_one() if exclusive else self._ready()
            if ready is not None:
                return ready, True
            if self._open < self.limit:
                break
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            await waiter
        self._open += 1
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation that
            # lands as the connect completes, and a closing health checker waited for ever.
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await self.loop.create_connection(
                    lambda: Connection(self),
                    self.hostname,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.hostname if self.tls else None,
                )
        except (OSError, TimeoutError) as exc:
            self._open -= 1
            self._wake()
            raise UpstreamError("connect", type(exc).__name__, sent=False) from exc
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        self._busy.add(connection)
        if not exclusive:
            self._filling = connection
        return connection, False

    def flushed(self, connection: Connection) -> None:
        """The connection's queued requests went out: later ones start a new write."""
        if self._filling is connection:
            self._filling = None

    def idle(self, connection: Connection) -> None:
        """Every answer is in: the connection may be reused."""
        self._busy.discard(connection)
        connection.idle_since = self.loop.time()
        self._idle.append(connection)
        self._wake()

    def forget(self, connection: Connection) -> None:
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
        for task in self._resending:
            task.cancel()
