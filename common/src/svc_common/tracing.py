"""OpenTelemetry traces on the request path: one server span per hop, written once for the
lane and the ASGI path (both call begin() when a request arrives and finish() when it ends).

Callers test ENABLED first (svc_common.tracing_setup sets it from OTEL_*): off, nothing here
runs and a caller's traceparent passes through every hop untouched. On, each hop takes part in
the caller's W3C trace (or starts one), sends its own traceparent to the next hop and back to
the client, and names its trace and span in its log lines. The configured sampler decides, as
the SDK's tracer would; a sampled hop's span goes to the SDK's span processor when the request
ends, the one SDK object it costs, and an unsampled hop is a traceparent and nothing more
(docs/adr/0011-one-span-policy-for-both-paths.md).
"""

import time
from binascii import hexlify
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceState,
)
from opentelemetry.util.types import AttributeValue

from svc_common import request_headers, trace_context, tracing_pipeline
from svc_common.tracing_pipeline import LOW_64, NOT_SAMPLED, SAMPLED, ids

if TYPE_CHECKING:  # the SDK is imported only when traces are on
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.sampling import Sampler

ENABLED = False
# Where the ASGI scope carries the hop the lane started, for a request it hands over (TO_ASGI).
SCOPE_KEY = "trace_hop"
# Access-line fields a proxy reports, as span attributes.
_ATTRIBUTES = {"backend": "lb.backend", "tries": "lb.tries"}
_REPORTED_TYPES = (str, int)
_ERROR = Status(StatusCode.ERROR)
_SERVER = SpanKind.SERVER  # looked up once, not through the enum class per span


class Recording:
    """The span a sampled hop reports when its request ends."""

    __slots__ = ("attributes", "context", "parent", "start_ns")

    def __init__(
        self,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, AttributeValue],
    ) -> None:
        self.context = context
        self.parent = parent
        self.attributes = attributes
        self.start_ns = time.time_ns()


class Hop:
    """This hop's part in one request's trace: the traceparent naming its span (sent on, and
    answered when this hop began the trace), the caller's tracestate, and its span's record
    when the trace is sampled."""

    __slots__ = ("answer", "relayed", "span", "traceparent", "tracestate")

    # Positional only: a hop is made on every request, and keywords cost a third more.
    def __init__(
        self,
        traceparent: bytes,
        tracestate: bytes | None,
        span: Recording | None,
        answer: tuple[tuple[bytes, bytes], ...] = (),
        relayed: bool = False,
        /,
    ) -> None:
        self.traceparent = traceparent
        self.tracestate = tracestate
        self.span = span
        # The header a caller that sent no traceparent hears its new trace by (inner hops'
        # callers are our own proxies, which would drop it).
        self.answer = answer
        # The caller's traceparent, sent on as it came: this hop takes no part in the trace.
        self.relayed = relayed


_current: ContextVar[Hop | None] = ContextVar("trace_hop", default=None)


def enable(sampler: "Sampler", resource: "Resource", processor: "SpanProcessor") -> None:
    """Traces on, from here on, sampled by sampler into processor (tracing_setup.configure)."""
    global ENABLED  # noqa: PLW0603
    tracing_pipeline.current = tracing_pipeline.build(sampler, resource, processor)
    ENABLED = True


def start(method: str, path: str, route: str, headers: list[tuple[bytes, bytes]]) -> Hop:
    """This hop's part in the trace of a request with these headers."""
    _, _, traceparent, tracestate = request_headers.scan(headers)
    return begin(method, path, route, traceparent, tracestate)


def begin(
    method: str, path: str, route: str, traceparent: bytes | None, tracestate: bytes | None
) -> Hop:
    """This hop's part in the request's trace: a child of the span its caller's traceparent
    names, or a new trace."""
    pipeline = tracing_pipeline.current
    assert pipeline is not None, "begin() is called only when ENABLED"
    found = trace_context.caller(traceparent, tracestate)
    caller = state = None
    if found is not None:
        traceparent, state, sampled = found
        if pipeline.follows_parent and not sampled:
            # Nothing of this hop would be recorded: W3C lets it send the caller's traceparent
            # on untouched, which then names the request in every hop's log lines.
            return Hop(traceparent, state, None, (), True)
        trace_id, parent_id = trace_context.numbers(traceparent)
        caller = SpanContext(
            trace_id,
            parent_id,
            True,  # is_remote
            # The one flag version 00 defines (others do not reach the span's record).
            SAMPLED if sampled else NOT_SAMPLED,
            TraceState.from_header([state.decode("latin-1")]) if state else None,
        )
        span_id = ids.getrandbits(64) or 1
    else:
        # A new trace: its id and this hop's span id in one draw.
        drawn = ids.getrandbits(192)
        trace_id, span_id = drawn >> 64 or 1, drawn & LOW_64 or 1
    attributes: dict[str, AttributeValue] | None = None
    trace_state: TraceState | None
    if caller is not None and pipeline.follows_parent:
        sampled, trace_state = True, caller.trace_state
    elif caller is None and pipeline.bound is not None:  # the sampler's own test, inline
        sampled, trace_state = trace_id & LOW_64 < pipeline.bound, None
    else:
        attributes = _attributes(method, path, route)
        decided = pipeline.sampler.should_sample(
            trace.set_span_in_context(NonRecordingSpan(caller)) if caller else None,
            trace_id,
            f"{method} {route}",
            SpanKind.SERVER,
            attributes,
        )
        sampled = decided.decision.is_sampled()  # type: ignore[no-untyped-call]
        trace_state = decided.trace_state
        if sampled:  # the span says what the sampler returned, as the tracer's would
            attributes = dict(decided.attributes or attributes)
    # One conversion writes both ids in hex, the dash between them included.
    ids_hex = hexlify((trace_id << 64 | span_id).to_bytes(24, "big"), b"-", -16)
    traceparent = b"00-%b-%b" % (ids_hex, b"01" if sampled else b"00")
    answer = () if caller else ((b"traceparent", traceparent),)
    if not sampled:
        return Hop(traceparent, state, None, answer)
    own = SpanContext(trace_id, span_id, False, SAMPLED, trace_state)  # not is_remote
    span = Recording(own, caller, attributes or _attributes(method, path, route))
    return Hop(traceparent, state, span, answer)


def _attributes(method: str, path: str, route: str) -> dict[str, AttributeValue]:
    """A server span's attributes when it starts (the sampler sees them)."""
    return {"http.request.method": method, "url.path": path, "http.route": route}


def finish(
    hop: Hop, method: str, route: str, status: int, extra: Mapping[str, object] | None
) -> None:
    """Report the hop's span with the route template (known only now on the ASGI path), the
    answer's status and what a proxy reports (the backend chosen, how many tries); a hop
    that is not sampled has none."""
    span = hop.span
    if span is None:
        return
    attributes = span.attributes
    attributes["http.route"] = route
    attributes["http.response.status_code"] = status
    for key, value in (extra or {}).items():
        name = _ATTRIBUTES.get(key)
        if name is not None and isinstance(value, _REPORTED_TYPES):
            attributes[name] = value
    tracing_pipeline.report(
        f"{method} {route}",
        span.context,
        span.parent,
        attributes,
        _SERVER,
        _ERROR if status >= 500 else tracing_pipeline.UNSET,
        span.start_ns,
        time.time_ns(),
    )


def headers(hop: Hop) -> list[tuple[bytes, bytes]]:
    """traceparent (and tracestate) naming this hop's span, for the next hop:
    W3C trace context, whatever OTEL_PROPAGATORS says (baggage passes through untouched)."""
    if hop.tracestate:
        return [(b"traceparent", hop.traceparent), (b"tracestate", hop.tracestate)]
    return [(b"traceparent", hop.traceparent)]


def quiet_outside_requests() -> object:
    """Client instrumentations stay quiet in this context and all it starts (attach() lifts
    that for a sampled request): health checks and background work make no traces. The token
    undoes it (otel_context.detach)."""
    return otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))


def attach(hop: Hop) -> tuple[object, object | None]:
    """Make the hop current in this context: its database and Redis calls become children of
    its span and its log lines carry its ids. Unsampled, the client instrumentations stay
    quiet (they would build spans only to drop them). detach(token) undoes it."""
    if hop.span is None and otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY):
        return _current.set(hop), None  # quiet already (quiet_outside_requests)
    return _current.set(hop), client_spans_under(hop)


def client_spans_under(hop: Hop | None) -> object:
    """From here on, the client instrumentations' spans go under the hop's span when it is
    sampled, and nowhere otherwise; otel_context.detach(token) undoes it."""
    span = hop.span if hop is not None else None
    context = otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, span is None)
    if span is not None:
        context = trace.set_span_in_context(NonRecordingSpan(span.context), context)
    return otel_context.attach(context)


def detach(token: tuple[object, object | None]) -> None:
    """Undo attach()."""
    ours, theirs = token
    if theirs is not None:
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
    return trace_context.log_fields(hop.traceparent)
