"""Forwarding one ASGI request over aiohttp: the shared core of the gateway and the balancer."""

import socket
from collections.abc import Iterable

import aiohttp
from starlette.types import Receive, Scope, Send
from yarl import URL

from svc_common.fastlane import FastRequest
from svc_common.logging import request_id_var

# RFC 9110 section 7.6.1, plus headers the client library or server sets itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
_NOT_FORWARDED_UP = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"x-request-id",
    b"x-forwarded-host",
    b"x-forwarded-proto",
}
# uvicorn writes its own date/server, and our middleware its own request id.
_NOT_RELAYED_DOWN = HOP_BY_HOP | {b"date", b"server", b"x-request-id"}
RELAY_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    """The request body exceeded the configured limit."""


def new_session(
    *,
    total_timeout: float,
    connect_timeout: float,
    limit: int,
    limit_per_host: int,
    keepalive_timeout: float = 4.0,
    retry_stale_connections: bool = True,
) -> aiohttp.ClientSession:
    """A keep-alive session for forwarding: no cookies, no decompression, no extra headers."""
    # keepalive_timeout stays below the upstream's idle timeout (uvicorn's default is 5 s), so
    # a request is never written on a connection the upstream is closing.
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


def _hop_by_hop(base: frozenset[bytes], headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """base plus the headers a Connection header names as hop-by-hop (RFC 9110 7.6.1)."""
    named = [
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    ]
    # Almost no request or answer has one: then the shared set serves, with no set built.
    return base.union(named) if named else base


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


def forward_headers(
    headers: list[tuple[bytes, bytes]],
    *,
    client_ip: str,
    scheme: str,
    request_id: str,
    keep_forwarded: bool = False,
) -> list[tuple[bytes, bytes]]:
    """End-to-end request headers plus X-Forwarded-For/-Proto/-Host and X-Request-ID."""
    # keep_forwarded: an inner hop (behind a trusted proxy) passes on the X-Forwarded-Host and
    # -Proto it received, which describe the client's request, instead of its own.
    dropped = _hop_by_hop(_NOT_FORWARDED_UP, headers)
    out: list[tuple[bytes, bytes]] = []
    forwarded_for = b""
    host = b""
    proto = b""
    for name, value in headers:
        if keep_forwarded and name == b"x-forwarded-host":
            host = value
        elif keep_forwarded and name == b"x-forwarded-proto":
            proto = value
        elif name == b"x-forwarded-for":
            forwarded_for = forwarded_for + b", " + value if forwarded_for else value
        elif name == b"host":
            host = host or value
        elif name not in dropped:
            out.append((name, value))
    ip = client_ip.encode("latin-1")
    out.append((b"x-forwarded-for", forwarded_for + b", " + ip if forwarded_for else ip))
    out.append((b"x-forwarded-proto", proto or scheme.encode("latin-1")))
    if host:
        out.append((b"x-forwarded-host", host))
    out.append((b"x-request-id", request_id.encode("latin-1")))
    return out


def lane_headers(
    request: FastRequest, *, keep_forwarded: bool = False
) -> list[tuple[bytes, bytes]]:
    """forward_headers for a request on the fast lane."""
    return forward_headers(
        request.headers,
        client_ip=request.client[0] if request.client else "unknown",
        scheme=request.scheme,
        request_id=request.request_id,
        keep_forwarded=keep_forwarded,
    )


def relayed_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An upstream answer's headers (lower-case names) minus hop-by-hop ones."""
    dropped = _hop_by_hop(_NOT_RELAYED_DOWN, headers)
    return [(name, value) for name, value in headers if name not in dropped]


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


def route_label(path: str, known: frozenset[str] = frozenset({"itens"})) -> str:
    """A bounded metrics label for a forwarded path: /itens, /itens/{id} or unmatched."""
    first, _, rest = path.lstrip("/").partition("/")
    if first not in known:
        return "unmatched"
    return f"/{first}/{{id}}" if rest else f"/{first}"


async def forward(
    session: aiohttp.ClientSession,
    base_url: str,
    scope: Scope,
    send: Send,
    *,
    body: bytes,
    headers: list[tuple[str, str]],
) -> int:
    """Send the request to base_url and relay the answer; returns the upstream status."""
    async with session.request(
        scope["method"],
        upstream_url(base_url, scope),
        headers=headers,
        data=body or None,
        allow_redirects=False,  # a redirect is the client's to follow, not the proxy's
    ) as response:
        await relay_response(response, send)
        return response.status
