"""Request bodies: buffered (and so replayable) when small, streamed when large."""

from collections.abc import AsyncIterator

from starlette.types import Receive


class ClientGone(Exception):
    """The client disconnected before its request body was complete."""


class RequestBody:
    """What the balancer sends upstream: a buffer that may be sent twice, or a one-shot stream."""

    # A streamed body cannot be replayed, so a request whose streamed body has started to go
    # out is never retried; one whose stream was not touched yet (connect failed) still may be.

    def __init__(self, receive: Receive, head: list[bytes], *, complete: bool) -> None:
        self._receive = receive
        self._head = head
        self.buffered: bytes | None = b"".join(head) if complete else None
        self.started = False
        self.client_gone = False

    @classmethod
    async def read(cls, receive: Receive, *, limit: int) -> "RequestBody":
        """Take the body from the client up to `limit` bytes; the rest stays to be streamed."""
        head: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk: bytes = message.get("body", b"")
            if chunk:
                head.append(chunk)
                size += len(chunk)
            if not message.get("more_body", False):
                return cls(receive, head, complete=True)
            if size > limit:
                return cls(receive, head, complete=False)

    @property
    def replayable(self) -> bool:
        """Whether the same bytes can be sent to a second backend."""
        return self.buffered is not None or not self.started

    def content(self) -> bytes | AsyncIterator[bytes]:
        """What one try sends: the buffered bytes, or the stream."""
        if self.buffered is not None:
            return self.buffered
        return self._stream()

    async def _stream(self) -> AsyncIterator[bytes]:
        self.started = True
        for chunk in self._head:
            yield chunk
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                # Ending quietly would hand the backend a truncated body as if it were whole.
                raise ClientGone
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return
