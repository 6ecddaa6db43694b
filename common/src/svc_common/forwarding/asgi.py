"""Forwarding one ASGI request: any method, its body, and the answer streamed back.

The lane forwards plain GETs over the same UpstreamPool (svc_common.forwarding.pool); this
adapter carries the rest, with the same headers (forwarding.headers) and the same failure
taxonomy (forwarding.failures).
"""

from collections.abc import AsyncIterator

from starlette.types import Receive, Scope, Send

from svc_common import tracing
from svc_common.forwarding.failures import UpstreamError
from svc_common.forwarding.headers import forward_headers, relayed_headers
from svc_common.forwarding.pool import UpstreamPool
from svc_common.forwarding.replies import StreamedReply, request_head
from svc_common.logging import request_id_var

# Answers announced at most this big are read whole before any of them is relayed, so a
# failure on the way is still one the proxy may retry (almost every API answer is).
RELAY_WHOLE_BYTES = 64 * 1024
# RFC 9110 section 9.2.2.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class BodyTooLarge(Exception):
    """The request body exceeded the configured limit."""


class RelayInterrupted(Exception):
    """The upstream failed after the response had started; the client connection is dropped."""


def may_resend(method: str, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether sending the request twice is harmless: an idempotent method or a keyed one."""
    return method in IDEMPOTENT_METHODS or any(name == b"idempotency-key" for name, _ in headers)


def client_address(scope: Scope) -> str:
    """The peer's IP address as the server saw it."""
    client = scope.get("client")
    return client[0] if client else "unknown"


def upstream_headers(
    scope: Scope, *, client_ip: str, keep_forwarded: bool = False
) -> list[tuple[bytes, bytes]]:
    """End-to-end request headers plus X-Forwarded-* and the request id."""
    return forward_headers(
        scope["headers"],
        client_ip=client_ip,
        scheme=scope.get("scheme", "http"),
        request_id=request_id_var.get(),
        keep_forwarded=keep_forwarded,
        hop=tracing.current(),
    )


def upstream_target(scope: Scope) -> bytes:
    """The request's path and query exactly as the client encoded them."""
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return path + b"?" + query if query else path


async def read_body(receive: Receive, *, limit: int | None = None) -> bytes:
    """The whole request body; BodyTooLarge past limit bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def forward(
    pool: UpstreamPool,
    scope: Scope,
    send: Send,
    *,
    headers: list[tuple[bytes, bytes]],
    body: bytes | AsyncIterator[bytes],
    time_limit: float,
    body_time_limit: float | None = None,
    resend: bool = False,
    fresh: bool = False,
) -> int:
    """Send the request and relay the answer; returns the upstream status.

    UpstreamError when no answer reached the client (RelayInterrupted once one had started).
    time_limit: for the head of the answer; body_time_limit: for all of it, from now.
    resend: the request may go out once more if its connection closes before any answer
    (an idempotent method, or a request with an Idempotency-Key)."""
    method: str = scope["method"]
    if isinstance(body, bytes):
        # A method that carries a body says how long it is, even when empty (RFC 9110 8.6).
        sized = body or method in {"POST", "PUT", "PATCH"}
        framing = b"content-length: %d" % len(body) if sized else b""
    else:
        framing = b"transfer-encoding: chunked"
    head = request_head(
        upstream_target(scope), pool.host, headers, method=method.encode(), framing=framing
    )
    reply = await pool.stream(
        head,
        body,
        time_limit=time_limit,
        resend=resend and may_resend(method, headers),
        fresh=fresh,
        head_only=method == "HEAD",
        body_time_limit=body_time_limit,
    )
    await relay(reply, send)
    return reply.status


async def relay(reply: StreamedReply, send: Send) -> None:
    """Relay an upstream answer to the ASGI client as it comes, minus hop-by-hop headers."""
    await reply.started()
    start = {
        "type": "http.response.start",
        "status": reply.status,
        "headers": relayed_headers(reply.headers),
    }
    length = reply.announced_length()
    if reply.head_only or (length is not None and length <= RELAY_WHOLE_BYTES):
        body = b"" if reply.head_only else await reply.read()
        await send(start)
        await send({"type": "http.response.body", "body": body})
        return
    await send(start)
    try:
        async for chunk in reply:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except UpstreamError as exc:
        raise RelayInterrupted from exc
    await send({"type": "http.response.body", "body": b""})
