"""uvicorn's httptools protocol with one write per response.

uvicorn writes the status line and headers as soon as `http.response.start` arrives, and the
body in a second write: two system calls, and two wake-ups of the client, per response.
Here every write a connection makes during one event-loop iteration is joined and leaves
once that iteration ends; a response sent in one go (almost all of ours) is one write.
svc_common.lane_protocol adds the fast lane (svc_common.fastlane) to this protocol.
"""

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from svc_common.envelope import error_response
from svc_common.fastlane import encode
from svc_common.middleware import request_id_from


class CoalescingTransport:
    """Wraps a transport: write() buffers until the end of the loop iteration; the rest passes."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._chunks: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue data; it is sent, with whatever else is written meanwhile, after this step."""
        if not data:
            return
        self._chunks.append(bytes(data))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def write_through(self, data: bytes) -> None:
        """Send what is queued and data now, in one write (nothing more is coming this time)."""
        if self._chunks:
            self._chunks.append(data)
            self.flush()
        elif not self._transport.is_closing():
            self._transport.write(data)

    def flush(self) -> None:
        """Send what is queued now."""
        self._scheduled = False
        if not self._chunks:
            return
        chunks, self._chunks = self._chunks, []
        if not self._transport.is_closing():
            self._transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def writelines(self, data: list[bytes]) -> None:
        """Queue each piece."""
        for piece in data:
            self.write(piece)

    def get_write_buffer_size(self) -> int:
        """Bytes not yet handed to the kernel, ours included."""
        return self._transport.get_write_buffer_size() + sum(map(len, self._chunks))

    def close(self) -> None:
        """Send what is queued, then close (as a transport's close() does)."""
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        """Send what is queued, then half-close."""
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        """Drop what is queued and the connection."""
        self._chunks.clear()
        self._transport.abort()

    def is_closing(self) -> bool:
        """Asked on every response: spelt out so it skips __getattr__."""
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol over a CoalescingTransport, with a keep-alive timer per idle stretch.

    uvicorn arms a keep-alive timer after every response and cancels it when the next
    request's bytes arrive: a timer made and dropped per request. Here a response notes when
    the connection went idle and arms a timer only if none is armed; when it fires it closes
    the connection if that idle stretch has lasted the keep-alive time, else it waits out the rest.
    """

    _idle_since: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Hand uvicorn the wrapped transport."""
        self.coalescing = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(cast(Any, self.coalescing))

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are not HTTP, in the envelope every other 4xx has."""
        answer = encode(
            error_response(400, msg),
            request_id=request_id_from(self.headers or []),
            default_headers=self.server_state.default_headers,
            keep_alive=False,
        )
        self.transport.write(answer)
        self.transport.close()

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn calls this when bytes arrive: the connection is busy, not idle.
        self._idle_since = None

    def on_response_complete(self) -> None:
        """uvicorn's, but the keep-alive timer is armed only when none is."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self._keep_alive_expired
            )

    def _keep_alive_expired(self) -> None:
        self.timeout_keep_alive_task = None
        if self._idle_since is None:
            return  # a request came in; its response arms the timer again
        left = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_expired)
        else:
            self.timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        """uvicorn's, and the keep-alive timer goes too."""
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
