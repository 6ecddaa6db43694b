"""One keep-alive HTTP/1.1 connection of a proxy's client (svc_common.forwarding.pool).

Requests go out as the caller built them; answers are parsed with httptools, the parser
uvicorn uses, and handed to the waiting requests in order (HTTP/1.1 pipelining): whole, or
as they come to a StreamedReply.
"""

import asyncio
from collections import deque
from typing import Protocol, cast

import httptools

from svc_common.forwarding.failures import UNREAD_RESETS, UpstreamError
from svc_common.forwarding.replies import Reply, StreamedReply, Waiter

# Bigger answers are refused rather than held in memory (the lane buffers whole answers).
MAX_BODY_BYTES = 8 * 1024 * 1024


class Owner(Protocol):
    """What a connection asks of its pool (svc_common.forwarding.pool.UpstreamPool)."""

    loop: asyncio.AbstractEventLoop
    depth: int

    def flushed(self, connection: "Connection", /) -> None:
        """Its queued requests went out."""

    def idle(self, connection: "Connection", /) -> None:
        """Every answer is in."""

    def forget(self, connection: "Connection", /) -> None:
        """It closed."""

    def resend(self, requests: "list[tuple[bytes, Waiter, float, UpstreamError]]", /) -> None:
        """Send these again on a fresh connection."""


class Connection(asyncio.Protocol):
    """One keep-alive connection; requests of the same moment may share it, pipelined."""

    def __init__(self, pool: Owner) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        # Oldest first: HTTP/1.1 answers come in the order the requests went.
        self.waiters: deque[Waiter] = deque()
        self.deadlines: deque[float] = deque()  # each waiter's, on the loop's clock
        # Each waiter's request when it may be sent again unanswered (idempotent), else None.
        self.resendable: deque[bytes | None] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.outbox: list[bytes] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.answered = False  # any byte of an answer arrived since the last complete one
        self.closed = False
        self.idle_since = 0.0
        self.streaming: StreamedReply | None = None  # the answer being passed on as it comes
        self.spent = False  # answered a HEAD: the parser cannot go on past it
        self._writable: asyncio.Future[None] | None = None  # set while writing is paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def send(self, data: bytes, waiter: Waiter, *, time_limit: float, resend: bool) -> None:
        """Queue one request; it leaves with the others of this loop iteration, in one write,
        or at once when it fills the connection (the pool's depth). The waiter gets its
        answer, or an UpstreamError: "timeout" when none came within time_limit seconds.
        resend: the request is idempotent, and goes out again on a fresh connection if this
        one closes before any of its answer arrives."""
        deadline = self.pool.loop.time() + time_limit
        self.waiters.append(waiter)
        self.deadlines.append(deadline)
        self.resendable.append(data if resend else None)
        if self.timer is None or deadline < self.timer_at:
            self._arm(deadline)
        if not self.outbox:
            self.pool.loop.call_soon(self.flush)
        self.outbox.append(data)
        if len(self.outbox) >= self.pool.depth:
            # Nothing more can join this write: sending it now lets the upstream start on it
            # while this process goes on with the rest of the iteration (same number of writes).
            self.flush()

    def _check_deadlines(self) -> None:
        """One timer per connection, not one per request, armed for the soonest deadline
        (answered requests leave theirs behind: then it waits for the soonest one pending).
        A request past its own fails, and the connection with it: its answer would go to
        the next request."""
        self.timer = None
        if not self.deadlines:
            return
        now = self.pool.loop.time()
        soonest = min(self.deadlines)
        if soonest > now:
            self._arm(soonest)
            return
        for waiter, deadline in zip(self.waiters, self.deadlines, strict=True):
            if deadline <= now and not waiter.done():
                waiter.set_exception(UpstreamError("timeout", "no answer in time", sent=True))
        self._fail(UpstreamError("reset", "closed behind a timed-out request", sent=True))

    def _arm(self, deadline: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.pool.loop.call_at(deadline, self._check_deadlines)
        self.timer_at = deadline

    def write(self, data: bytes) -> None:
        """Send part of a request body."""
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the kernel's buffer towards the upstream is full."""
        if self._writable is not None:
            await self._writable

    def pause_writing(self) -> None:
        """asyncio: the write buffer is over its high-water mark."""
        self._writable = self.pool.loop.create_future()

    def resume_writing(self) -> None:
        """asyncio: the write buffer drained."""
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def pause_reading(self) -> None:
        """A streamed answer's consumer is behind."""
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """It caught up."""
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def flush(self) -> None:
        """Send what is queued now (a streamed body follows its head)."""
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
                cause = UpstreamError("reset", f"malformed answer: {exc}", sent=True, answered=True)
            self._fail(cause)
            return
        if self.spent:
            # httptools cannot be told that a HEAD's answer has no body: end the connection.
            self._fail(UpstreamError("reset", "closed after a HEAD", sent=True))

    def on_message_begin(self) -> None:
        """httptools callback."""
        self.headers, self.body, self.size = [], [], 0

    def on_header(self, name: bytes, value: bytes) -> None:
        """httptools callback."""
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        """httptools callback: a streamed answer starts now (a 1xx is not the answer)."""
        waiter = self.waiters[0]
        if type(waiter) is not StreamedReply or waiter.done():
            return  # answered whole (the lane's GETs): nothing to do until it is complete
        status = self.parser.get_status_code()
        if status >= 200:
            waiter.head(status, self.headers, self)
            if waiter.head_only:
                waiter.end()
                self.waiters.popleft()
                self.deadlines.popleft()
                self.resendable.popleft()
                self.spent = True
                self.answered = False
            else:
                self.streaming = waiter
                if waiter.body_deadline is not None:
                    self.deadlines[0] = waiter.body_deadline

    def on_body(self, body: bytes) -> None:
        """httptools callback."""
        if self.streaming is not None:
            self.streaming.data(body)
            return
        self.size += len(body)
        if self.size > MAX_BODY_BYTES:
            raise UpstreamError("oversize", "answer too large to hold", sent=True, answered=True)
        self.body.append(body)

    def on_message_complete(self) -> None:
        """httptools callback: hand the answer to the oldest waiter."""
        status = self.parser.get_status_code()
        if self.spent or status < 200:
            # A HEAD's answer, handed over with its head; or a 1xx (100 Continue, 103 Early
            # Hints), which the answer follows.
            return
        self.answered = False
        waiter = self.waiters.popleft()
        self.deadlines.popleft()
        self.resendable.popleft()
        keep_alive = self.parser.should_keep_alive()
        stream, self.streaming = self.streaming, None
        if stream is not None:
            stream.end()
        elif not waiter.done():
            body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
            waiter.set_result(Reply(status, self.headers, body, keep_alive))
        if not keep_alive:
            self._fail(UpstreamError("reset", "closed by upstream", sent=True))
        elif not self.waiters:
            self.pool.idle(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Whoever waits learns whether the upstream can have seen their requests."""
        self.closed = True
        self.pool.forget(self)
        unread = isinstance(exc, OSError) and exc.errno in UNREAD_RESETS
        name = type(exc).__name__ if exc else "closed by upstream"
        sent = self.answered or not unread
        self._fail(UpstreamError("reset", name, sent=sent, answered=self.answered))

    def _fail(self, error: UpstreamError) -> None:
        """The connection is done; every waiter fails: the first with `error`, the ones behind
        it as sent (they may have been read) and unanswered. An unanswered request that may
        be sent again goes out once more on a fresh connection instead (RFC 9112 9.3.1)."""
        self.streaming = None
        self.resume_writing()  # a body writer waiting to send more sees the connection closed
        waiters, self.waiters = self.waiters, deque()
        deadlines, self.deadlines = self.deadlines, deque()
        resendable, self.resendable = self.resendable, deque()
        again: list[tuple[bytes, Waiter, float, UpstreamError]] = []
        for waiter, deadline, data in zip(waiters, deadlines, resendable, strict=True):
            if waiter.done():
                pass
            elif data is not None and error.unanswered_close:
                again.append((data, waiter, deadline, error))
            else:
                waiter.set_exception(error)
            error = UpstreamError(error.reason, error.error, sent=True)
        self.close()
        if again:
            self.pool.resend(again)

    def close(self) -> None:
        """Drop the connection."""
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.abort()
