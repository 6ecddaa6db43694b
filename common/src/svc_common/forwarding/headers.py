"""Header rewriting of a forwarding hop, the same on the lane and the ASGI path."""

from collections.abc import Iterable

from svc_common import trace_context, tracing

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
    # The proxy sends the body it has read already: the upstream has nothing to wait for.
    b"expect",
    b"host",
    b"content-length",
    b"x-request-id",
    b"x-forwarded-host",
    b"x-forwarded-proto",
}
# With traces on, a hop writes its own traceparent (naming its span) in place of the caller's.
_NOT_FORWARDED_TRACED = _NOT_FORWARDED_UP | trace_context.TRACE_HEADERS
# uvicorn writes its own date/server, and our middleware its own request id (and traceparent:
# the client hears of this hop's span, not of the next one's).
_NOT_RELAYED_DOWN = HOP_BY_HOP | {b"date", b"server", b"x-request-id"} | trace_context.TRACE_HEADERS


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


def forward_headers(
    headers: list[tuple[bytes, bytes]],
    *,
    client_ip: str,
    scheme: str,
    request_id: str,
    keep_forwarded: bool = False,
    hop: tracing.Hop | None = None,
) -> list[tuple[bytes, bytes]]:
    """End-to-end request headers plus X-Forwarded-For/-Proto/-Host and X-Request-ID, and
    the traceparent of this hop's span when it has one (else the client's goes on as is)."""
    # keep_forwarded: an inner hop (behind a trusted proxy) passes on the X-Forwarded-Host and
    # -Proto it received, which describe the client's request, instead of its own.
    rewrites = hop is not None and not hop.relayed
    dropped = _hop_by_hop(_NOT_FORWARDED_TRACED if rewrites else _NOT_FORWARDED_UP, headers)
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
    if rewrites and hop is not None:
        out += tracing.headers(hop)
    return out


def relayed_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An upstream answer's headers (lower-case names) minus hop-by-hop ones."""
    dropped = _hop_by_hop(_NOT_RELAYED_DOWN, headers)
    return [(name, value) for name, value in headers if name not in dropped]


def route_label(path: str, known: frozenset[str] = frozenset({"itens", "identidade"})) -> str:
    """A bounded metrics label for a forwarded path: /itens, /itens/{id}, /identidade, unmatched."""
    first, _, rest = path.lstrip("/").partition("/")
    if first not in known:
        return "unmatched"
    return f"/{first}/{{id}}" if rest else f"/{first}"
