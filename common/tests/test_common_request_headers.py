"""One pass over a request's headers: what each path reads from them, and the checks after."""

from svc_common import middleware, request_headers, trace_context

PARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_one_pass_finds_the_body_the_request_id_and_the_trace_context() -> None:
    headers = [
        (b"host", b"x"),
        (b"tracestate", b"a=1"),
        (b"x-request-id", b"first"),
        (b"traceparent", PARENT),
        (b"x-request-id", b"second"),
        (b"tracestate", b"b=2"),
    ]
    assert request_headers.scan(headers) == (False, b"first", PARENT, b"a=1,b=2")
    assert request_headers.scan([(b"content-length", b"0")]) == (True, None, None, None)
    assert request_headers.scan([(b"transfer-encoding", b"chunked")])[0]


def test_the_request_id_sent_is_kept_only_when_safe() -> None:
    assert middleware.request_id_or_new(b"abc-123") == "abc-123"
    fresh = middleware.request_id_or_new(b"bad id\twith tabs")
    assert len(fresh) == 32
    assert fresh != middleware.request_id_or_new(None)
    assert middleware.request_id_from([(b"x-request-id", b"r-1")]) == "r-1"


def test_the_trace_context_found_is_checked_by_trace_context() -> None:
    assert trace_context.caller(PARENT, b"a=1") == (PARENT, b"a=1", True)
    assert trace_context.caller(PARENT[:-2] + b"00", None) == (PARENT[:-2] + b"00", None, False)
    assert trace_context.caller(None, b"a=1") is None
    assert trace_context.caller(b"00-" + b"0" * 32 + PARENT[35:], None) is None
