"""What a request's own headers say about it, read in one pass: the hot path walks them once
for the lane (is a body coming?), the request id and the W3C trace context, not once each.
Their owners check what was sent: svc_common.middleware the id, trace_context the rest."""

# Headers that announce a body (RFC 9112 section 6): the lane takes bodiless GETs only.
BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})


def scan(
    headers: list[tuple[bytes, bytes]],
) -> tuple[bool, bytes | None, bytes | None, bytes | None]:
    """Whether a body follows, and the first X-Request-ID, the traceparent and the tracestate
    (several joined, as W3C reads them), as they came."""
    body = False
    request_id = traceparent = tracestate = None
    for name, value in headers:
        if name == b"x-request-id":
            if request_id is None:
                request_id = value
        elif name == b"traceparent":
            traceparent = value
        elif name == b"tracestate":
            tracestate = value if tracestate is None else tracestate + b"," + value
        elif name in BODY_HEADERS:
            body = True
    return body, request_id, traceparent, tracestate
