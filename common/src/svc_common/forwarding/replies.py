"""What a request sent upstream waits on, and the head it is sent with.

A Reply is a whole answer (the lane's GETs); a Callback takes it by direct calls from the
connection, with no task; a StreamedReply takes it as it comes (the ASGI path: any method,
any size), with the connection's reading paused while too much waits to be sent on.
"""

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from svc_common.forwarding.failures import UpstreamError

# A streamed answer's bytes held for the consumer: above HIGH the upstream is paused, below
# LOW it reads again (the numbers asyncio's streams use for their buffers).
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


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


class Waiter(Protocol):
    """Who waits for an answer: an asyncio.Future, or an object answered by direct calls."""

    def done(self) -> bool:
        """Whether it has its outcome already (then later ones are dropped)."""

    def set_result(self, reply: Reply, /) -> None:
        """The answer."""

    def set_exception(self, error: BaseException, /) -> None:
        """No answer: an UpstreamError."""


class Callback:
    """A waiter answered by direct calls, for a request sent from a parser callback: it stands
    in for the asyncio.Future an awaited request waits on, with no task and no loop turn."""

    __slots__ = ("ended", "on_failure", "on_reply")

    def __init__(
        self, on_reply: Callable[[Reply], None], on_failure: Callable[[UpstreamError], None]
    ) -> None:
        self.on_reply = on_reply
        self.on_failure = on_failure
        self.ended = False

    def done(self) -> bool:
        """Whether the outcome is in (a timeout may come before a late answer)."""
        return self.ended

    def set_result(self, reply: Reply, /) -> None:
        """The answer."""
        self.ended = True
        self.on_reply(reply)

    def set_exception(self, error: BaseException, /) -> None:
        """No answer."""
        self.ended = True
        assert isinstance(error, UpstreamError)
        self.on_failure(error)


class Reader(Protocol):
    """The connection a streamed answer comes in on."""

    def pause_reading(self) -> None:
        """Stop reading from the upstream."""

    def resume_reading(self) -> None:
        """Read again."""


class StreamedReply:
    """An answer taken as it comes: head() once, data() per piece, then end() or a failure."""

    def __init__(self, *, head_only: bool = False, body_deadline: float | None = None) -> None:
        self.head_only = head_only  # a HEAD request: no body follows the head
        # On the loop's clock: how long the body may take once the head is in (the try's
        # time limit covers the wait for the head).
        self.body_deadline = body_deadline
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._chunks: deque[bytes] = deque()
        self._held = 0
        self._reader: Reader | None = None
        self._paused = False
        self._started = False
        self._ended = False
        self._error: UpstreamError | None = None
        self._wake: asyncio.Future[None] | None = None

    # What the connection calls.
    def done(self) -> bool:
        """Whether the whole answer, or a failure, is in."""
        return self._ended or self._error is not None

    def set_result(self, reply: Reply, /) -> None:
        """A whole answer at once (the head and the body)."""
        self.head(reply.status, reply.headers, None)
        if reply.body:
            self.data(reply.body)
        self.end()

    def set_exception(self, error: BaseException, /) -> None:
        """No (more) answer."""
        assert isinstance(error, UpstreamError)
        self._error = error
        self._notify()

    def head(self, status: int, headers: list[tuple[bytes, bytes]], reader: Reader | None) -> None:
        """The status line and headers arrived."""
        self.status, self.headers, self._reader = status, headers, reader
        self._started = True
        self._notify()

    def data(self, chunk: bytes) -> None:
        """A piece of the body arrived."""
        self._chunks.append(chunk)
        self._held += len(chunk)
        if self._held > HIGH_WATER and self._reader is not None and not self._paused:
            self._paused = True
            self._reader.pause_reading()
        self._notify()

    def end(self) -> None:
        """The body is complete."""
        self._ended = True
        self._notify()

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _changed(self) -> None:
        self._wake = asyncio.get_running_loop().create_future()
        await self._wake

    # What the consumer calls.
    async def started(self) -> None:
        """Wait for the head; UpstreamError when none came."""
        while not self._started:
            if self._error is not None:
                raise self._error
            await self._changed()

    def announced_length(self) -> int | None:
        """The Content-Length of the answer, when it has one."""
        for name, value in self.headers:
            if name == b"content-length" and value.isdigit():
                return int(value)
        return None

    async def read(self) -> bytes:
        """The whole body; UpstreamError when it broke off."""
        return b"".join([chunk async for chunk in self])

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """The body's pieces as they come; UpstreamError when it broke off."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._held -= len(chunk)
                if self._paused and self._held < LOW_WATER and self._reader is not None:
                    self._paused = False
                    self._reader.resume_reading()
                yield chunk
            elif self._ended:
                return
            elif self._error is not None:
                raise self._error
            else:
                await self._changed()


def request_head(
    target: bytes,
    host: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    method: bytes = b"GET",
    framing: bytes = b"",
) -> bytes:
    """A request's head: method, target, Host, these headers, and the body's framing header
    (content-length or transfer-encoding) when it has a body."""
    out = [method, b" ", target, b" HTTP/1.1\r\nhost: ", host, b"\r\n"]
    for name, value in headers:
        out += (name, b": ", value, b"\r\n")
    if framing:
        out += (framing, b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)
