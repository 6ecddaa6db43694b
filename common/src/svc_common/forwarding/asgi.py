"""Forwarding one ASGI request over aiohttp: request bodies, and answers streamed back.

The lane forwards plain GETs over svc_common.forwarding.pool; this adapter carries what the
lane does not (bodies both ways, streamed), with the same headers (forwarding.headers) and
the same failure taxonomy (forwarding.failures).
"""

import socket

import aiohttp
from starlette.types import Receive, Scope, Send
from yarl import URL

from svc_common.forwarding.failures import UNREAD_RESETS, UpstreamError
from svc_common.forwarding.headers import forward_headers, relayed_headers
from svc_common.forwarding.pool import IDLE_SECONDS
from svc_common.logging import request_id_var

RELAY_CHUNK = 64 * 1024


def client_address(scope: Scope) -> str:
    """The peer's IP address as the server saw it."""
    client = scope.get("client")
    return client[0] if client else "unknown"


def upstream_headers(
    scope: Scope, *, client_ip: str, keep_forwarded: bool = False
) -> list[tuple[str, str]]:
    """End-to-end request headers plus X-Forwarded-* and the request id, for aiohttp."""
    headers = forward_headers(
        scope["headers"],
        client_ip=client_ip,
        scheme=scope.get("scheme", "http"),
        request_id=request_id_var.get(),
        keep_forwarded=keep_forwarded,
    )
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]


def classify(exc: BaseException) -> UpstreamError:
    """An aiohttp failure in the one taxonomy, by whether the upstream can have seen the request."""
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError):
        return UpstreamError("connect", name, sent=False)
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno in UNREAD_RESETS:
        return UpstreamError("reset", f"{name}: {exc.strerror}", sent=False)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return UpstreamError("timeout", name, sent=True)
    if isinstance(exc, TimeoutError):
        return UpstreamError("deadline", name, sent=True)
    answered = isinstance(exc, aiohttp.ClientPayloadError)
    return UpstreamError("reset", name, sent=True, answered=answered)


class BodyTooLarge(Exception):
    """The request body exceeded the configured limit."""


def new_session(
    *,
    total_timeout: float,
    connect_timeout: float,
    limit: int,
    limit_per_host: int,
    keepalive_timeout: float = IDLE_SECONDS,
    retry_stale_connections: bool = True,
) -> aiohttp.ClientSession:
    """A keep-alive session for forwarding: no cookies, no decompression, no extra headers."""
    # retry_stale_connections keeps aiohttp's resend of an idempotent request whose reused
    # connection failed; a caller with its own retry policy turns it off.
    connector = aiohttp.TCPConnector(
        limit=limit,
        limit_per_host=limit_per_host,
        ttl_dns_cache=10,
        family=socket.AF_UNSPEC,
        keepalive_timeout=keepalive_timeout,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        raise_for_status=False,
    )
    # No public switch exists; aiohttp's own test client flips the same attribute.
    session._retry_connection = retry_stale_connections
    return session


def upstream_url(base: str, scope: Scope) -> URL:
    """base plus the request's path and query exactly as the client encoded them."""
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    target = base.rstrip("/") + path.decode("latin-1")
    if query:
        target += "?" + query.decode("latin-1")
    return URL(target, encoded=True)


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


class RelayInterrupted(Exception):
    """The upstream failed after the response had started; the client connection is dropped."""


async def relay_response(response: aiohttp.ClientResponse, send: Send) -> None:
    """Stream an upstream response to the ASGI client, minus hop-by-hop headers."""
    headers = relayed_headers([(name.lower(), value) for name, value in response.raw_headers])
    start = {"type": "http.response.start", "status": response.status, "headers": headers}
    length = response.content_length
    if length is not None and length <= RELAY_CHUNK:
        # Small bodies (almost every API answer) are read first, so a failure is still retryable.
        body = await response.read()
        await send(start)
        await send({"type": "http.response.body", "body": body})
        return
    await send(start)
    try:
        async for chunk in response.content.iter_chunked(RELAY_CHUNK):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise RelayInterrupted from exc
    await send({"type": "http.response.body", "body": b""})


async def forward(
    session: aiohttp.ClientSession,
    base_url: str,
    scope: Scope,
    send: Send,
    *,
    body: bytes,
    headers: list[tuple[str, str]],
) -> int:
    """Send the request to base_url and relay the answer; returns the upstream status.

    UpstreamError when no answer reached the client (RelayInterrupted once one had started)."""
    try:
        async with session.request(
            scope["method"],
            upstream_url(base_url, scope),
            headers=headers,
            data=body or None,
            allow_redirects=False,  # a redirect is the client's to follow, not the proxy's
        ) as response:
            await relay_response(response, send)
            return response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise classify(exc) from exc
