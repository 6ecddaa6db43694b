"""One write per response: a transport that joins the writes of one event-loop iteration.

uvicorn writes the status line and headers as soon as `http.response.start` arrives, and the
body in a second write: two system calls, and two wake-ups of the client, per response.
Here every write a connection makes during one iteration leaves once that iteration ends;
a response sent in one go (almost all of ours) is one write.
"""

import asyncio
from typing import Any


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
