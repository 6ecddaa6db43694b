"""OpenTelemetry traces on the request path: one server span per hop, written once for the
lane and the ASGI path (both call start() when a request arrives and finish() when it ends).

Callers test ENABLED first (svc_common.tracing_setup sets it from OTEL_*): off, nothing here
runs and a caller's traceparent passes through every hop untouched. On, each hop takes part in
the caller's W3C trace (or starts one), sends its own traceparent to the next hop and back to
the client, and names its trace and span in its log lines. Only a sampled request costs SDK
objects: an unsampled one is a traceparent with a span id of this hop's, since under the
default parentbased sampler nothing below an unsampled caller is ever recorded
(docs/adr/0011-one-span-policy-for-both-paths.md).
"""

import random
import re
import secrets
from collections.abc import Mapping
from contextvars import ContextVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

ENABLED = False
_tracer: trace.Tracer | None = None
_follows_parent = False
# Where the ASGI scope carries the hop the lane started, for a request it hands over (TO_ASGI).
SCOPE_KEY = "trace_hop"
# What a hop writes for the next one (and the client); an upstream's are not relayed down.
TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})
# version-trace id-parent id-flags, lower-case hex (W3C Trace Context).
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZEROS = frozenset({b"0" * 32, b"0" * 16})
# Access-line fields a proxy reports, as span attributes.
_ATTRIBUTES = {"backend": "lb.backend", "tries": "lb.tries"}
# Span ids need to be unique, not secret (the SDK's generator uses random too).
_ids = random.Random(secrets.randbits(64))  # noqa: S311


class Hop:
    """This hop's part in one request's trace: the traceparent naming its span (sent on and
    answered with), the caller's tracestate, and the SDK's span when the trace is sampled."""

    __slots__ = ("span", "traceparent", "tracestate")

    def __init__(self, traceparent: bytes, tracestate: bytes | None, span: Span | None) -> None:
        self.traceparent = traceparent
        self.tracestate = tracestate
        self.span = span


_current: ContextVar[Hop | None] = ContextVar("trace_hop", default=None)


def enable(tracer: trace.Tracer, *, follows_parent: bool) -> None:
    """Traces on, from here on (tracing_setup.configure)."""
    global ENABLED, _tracer, _follows_parent
    _tracer, _follows_parent, ENABLED = tracer, follows_parent, True


def _caller(headers: list[tuple[bytes, bytes]]) -> tuple[re.Match[bytes] | None, bytes | None]:
    """The caller's traceparent (parsed, None when absent or invalid) and its tracestate."""
    parent = state = None
    for name, value in headers:
        if name == b"traceparent":
            parent = value
        elif name == b"tracestate":
            state = value if state is None else state + b"," + value
    match = _TRACEPARENT.fullmatch(parent) if parent is not None else None
    if match is None:
        return None, None
    version, trace_id, span_id, _, rest = match.groups()
    # ff is forbidden; version 00 has nothing after the flags (later versions may).
    if version == b"ff" or (version == b"00" and rest) or trace_id in _ZEROS or span_id in _ZEROS:
        return None, None
    return match, state


def start(method: str, path: str, route: str, headers: list[tuple[bytes, bytes]]) -> Hop:
    """This hop's part in the request's trace: a child of the caller's span, or a new trace."""
    assert _tracer is not None, "start() is called only when ENABLED"
    parent, state = _caller(headers)
    if parent is not None:
        _, trace_id, span_id, flags, _ = parent.groups()
        if _follows_parent and not int(flags, 16) & TraceFlags.SAMPLED:
            return Hop(b"00-%s-%016x-%s" % (trace_id, _ids.getrandbits(64), flags), state, None)
        caller = SpanContext(
            int(trace_id, 16),
            int(span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(int(flags, 16)),
            trace_state=TraceState.from_header([state.decode("latin-1")]) if state else None,
        )
        context = trace.set_span_in_context(NonRecordingSpan(caller))
    else:
        context = None
    span = _tracer.start_span(
        f"{method} {route}",
        context=context,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": path, "http.route": route},
    )
    own = span.get_span_context()
    traceparent = b"00-%032x-%016x-%02x" % (own.trace_id, own.span_id, own.trace_flags)
    return Hop(traceparent, state, span if span.is_recording() else None)


def finish(
    hop: Hop, method: str, route: str, status: int, extra: Mapping[str, object] | None
) -> None:
    """End the hop's span with the route template (known only now on the ASGI path), the
    answer's status and what a proxy reports (the backend chosen, how many tries)."""
    span = hop.span
    if span is None:
        return
    span.update_name(f"{method} {route}")
    attributes: dict[str, str | int] = {"http.route": route, "http.response.status_code": status}
    for key, value in (extra or {}).items():
        name = _ATTRIBUTES.get(key)
        if name is not None and isinstance(value, str | int):
            attributes[name] = value
    span.set_attributes(attributes)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def headers(hop: Hop) -> list[tuple[bytes, bytes]]:
    """traceparent (and tracestate) naming this hop's span, for the next hop or the client:
    W3C trace context, whatever OTEL_PROPAGATORS says (baggage passes through untouched)."""
    if hop.tracestate:
        return [(b"traceparent", hop.traceparent), (b"tracestate", hop.tracestate)]
    return [(b"traceparent", hop.traceparent)]


def attach(hop: Hop) -> tuple[object, object]:
    """Make the hop current in this context: its database and Redis calls become children of
    its span and its log lines carry its ids. Unsampled, the client instrumentations stay
    quiet (they would build spans only to drop them). detach(token) undoes it."""
    if hop.span is not None:
        context = trace.set_span_in_context(hop.span)
    else:
        context = otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True)
    return _current.set(hop), otel_context.attach(context)


def detach(token: tuple[object, object]) -> None:
    """Undo attach()."""
    ours, theirs = token
    otel_context.detach(theirs)  # type: ignore[arg-type]
    _current.reset(ours)  # type: ignore[arg-type]


def current() -> Hop | None:
    """The hop current in this context, when traces are on."""
    return _current.get() if ENABLED else None


def log_ids(hop: Hop | None = None) -> dict[str, str]:
    """trace_id and span_id of the hop (else of the current one) for a log line; {} without."""
    hop = hop or _current.get()
    if hop is None:
        return {}
    traceparent = hop.traceparent.decode("latin-1")
    return {"trace_id": traceparent[3:35], "span_id": traceparent[36:52]}
