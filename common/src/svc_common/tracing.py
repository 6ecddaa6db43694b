"""OpenTelemetry traces on the request path: one server span per hop, written once for the
lane and the ASGI path (both call start() when a request arrives and finish() when it ends).

Callers test ENABLED first (svc_common.tracing_setup sets it from OTEL_*): off, nothing here
runs and a caller's traceparent passes through every hop untouched. On, each hop takes part in
the caller's W3C trace (or starts one), sends its own traceparent to the next hop and back to
the client, and names its trace and span in its log lines. The configured sampler decides, as
the SDK's tracer would; a sampled hop's span goes to the SDK's span processor when the request
ends, the one SDK object it costs, and an unsampled hop is a traceparent and nothing more
(docs/adr/0011-one-span-policy-for-both-paths.md).
"""

import random
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util.types import AttributeValue

from svc_common import trace_context

if TYPE_CHECKING:  # the SDK is imported only when traces are on
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

ENABLED = False
# Where the ASGI scope carries the hop the lane started, for a request it hands over (TO_ASGI).
SCOPE_KEY = "trace_hop"
# How the SDK describes its samplers (Sampler.get_description).
_ROOT_SAMPLER = re.compile(r"ParentBased\{root:(\w+(?:\{[^{}]*\})?),")
_RATIO_SAMPLER = re.compile(r"TraceIdRatioBased\{([0-9.e+-]+)\}")
# Access-line fields a proxy reports, as span attributes.
_ATTRIBUTES = {"backend": "lb.backend", "tries": "lb.tries"}
# Trace and span ids need to be unique, not secret (the SDK's generator uses random too).
_ids = random.Random(secrets.randbits(64))  # noqa: S311
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_LOW_64 = (1 << 64) - 1  # the part of a trace id TraceIdRatioBased compares
_UNSET = Status(StatusCode.UNSET)
_ERROR = Status(StatusCode.ERROR)


class _Pipeline(NamedTuple):
    """Where sampled spans go: the provider's sampler, resource and processor."""

    sampler: "Sampler"
    follows_parent: bool
    # Whether a child of a sampled span of this process is sampled without asking the sampler.
    follows_local_parent: bool
    # Where the sampler's decision is `trace id's low 64 bits < bound` (always_on, always_off,
    # traceidratio: for a new trace, and below a caller too unless parent-based), the bound.
    bound: int | None
    resource: "Resource"
    scope: "InstrumentationScope"
    processor: "SpanProcessor"
    span: "type[ReadableSpan]"


_pipeline: _Pipeline | None = None


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

    def __init__(
        self,
        traceparent: bytes,
        tracestate: bytes | None,
        span: Recording | None,
        *,
        began: bool = False,
        relayed: bool = False,
    ) -> None:
        self.traceparent = traceparent
        self.tracestate = tracestate
        self.span = span
        # The caller's traceparent, sent on as it came: this hop takes no part in the trace.
        self.relayed = relayed
        # A caller that sent a traceparent knows its trace (inner hops' callers are our own
        # proxies, which would drop it); one that sent none hears here which trace it began.
        self.answer = ((b"traceparent", traceparent),) if began else ()


_current: ContextVar[Hop | None] = ContextVar("trace_hop", default=None)


def enable(sampler: "Sampler", resource: "Resource", processor: "SpanProcessor") -> None:
    """Traces on, from here on, sampled by sampler into processor (tracing_setup.configure)."""
    global ENABLED, _pipeline  # noqa: PLW0603
    from opentelemetry.sdk.trace import ReadableSpan  # noqa: PLC0415
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope  # noqa: PLC0415

    description = sampler.get_description()
    # A parentbased sampler keeps exactly the caller's decision (unless configured otherwise):
    # a hop below a caller then needs no sampler call.
    follows_parent = description.startswith("ParentBased{") and (
        "remoteParentSampled:AlwaysOnSampler" in description
        and "remoteParentNotSampled:AlwaysOffSampler" in description
    )
    follows_local_parent = description.startswith("ParentBased{") and (
        "localParentSampled:AlwaysOnSampler" in description
    )
    scope = InstrumentationScope("svc_common")
    _pipeline = _Pipeline(
        sampler,
        follows_parent,
        follows_local_parent,
        _bound(description),
        resource,
        scope,
        processor,
        ReadableSpan,
    )
    ENABLED = True


def _bound(description: str) -> int | None:
    """The trace-id bound of the samplers that decide by trace id alone, from the description
    the SDK gives them; None for any other (its should_sample is called)."""
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased  # noqa: PLC0415

    root = _ROOT_SAMPLER.match(description)
    name = root.group(1) if root else description
    if root is None and description.startswith("ParentBased{"):
        return None
    if name == "AlwaysOnSampler":
        return TraceIdRatioBased.TRACE_ID_LIMIT + 1
    if name == "AlwaysOffSampler":
        return 0
    ratio = _RATIO_SAMPLER.fullmatch(name)
    return TraceIdRatioBased.get_bound_for_rate(float(ratio.group(1))) if ratio else None


def start(method: str, path: str, route: str, headers: list[tuple[bytes, bytes]]) -> Hop:
    """This hop's part in the request's trace: a child of the caller's span, or a new trace."""
    assert _pipeline is not None, "start() is called only when ENABLED"
    found = trace_context.caller(headers)
    caller = state = None
    if found is not None:
        traceparent, (_, trace_hex, parent_hex, flags_hex, _), state = found
        flags = int(flags_hex, 16)
        if _pipeline.follows_parent and not flags & TraceFlags.SAMPLED:
            # Nothing of this hop would be recorded: W3C lets it send the caller's traceparent
            # on untouched, which then names the request in every hop's log lines.
            return Hop(traceparent, state, None, relayed=True)
        trace_id = int(trace_hex, 16)
        caller = SpanContext(
            trace_id,
            int(parent_hex, 16),
            is_remote=True,
            trace_flags=TraceFlags(flags),
            trace_state=TraceState.from_header([state.decode("latin-1")]) if state else None,
        )
    else:
        trace_id = _ids.getrandbits(128) or 1
    span_id = _ids.getrandbits(64) or 1
    attributes: dict[str, AttributeValue] | None = None
    trace_state: TraceState | None
    if caller is not None and _pipeline.follows_parent:
        sampled, trace_state = True, caller.trace_state
    elif caller is None and _pipeline.bound is not None:  # the sampler's own test, inline
        sampled, trace_state = trace_id & _LOW_64 < _pipeline.bound, None
    else:
        attributes = _attributes(method, path, route)
        decided = _pipeline.sampler.should_sample(
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
    if not sampled:
        return Hop(b"00-%032x-%016x-00" % (trace_id, span_id), state, None, began=caller is None)
    own = SpanContext(
        trace_id, span_id, is_remote=False, trace_flags=_SAMPLED, trace_state=trace_state
    )
    span = Recording(own, caller, attributes or _attributes(method, path, route))
    return Hop(b"00-%032x-%016x-01" % (trace_id, span_id), state, span, began=caller is None)


def _attributes(method: str, path: str, route: str) -> dict[str, AttributeValue]:
    """A server span's attributes when it starts (the sampler sees them)."""
    return {"http.request.method": method, "url.path": path, "http.route": route}


def finish(
    hop: Hop, method: str, route: str, status: int, extra: Mapping[str, object] | None
) -> None:
    """Report the hop's span with the route template (known only now on the ASGI path), the
    answer's status and what a proxy reports (the backend chosen, how many tries)."""
    span = hop.span
    if span is None or _pipeline is None:
        return
    attributes = span.attributes
    attributes["http.route"] = route
    attributes["http.response.status_code"] = status
    for key, value in (extra or {}).items():
        name = _ATTRIBUTES.get(key)
        if name is not None and isinstance(value, str | int):
            attributes[name] = value
    report(
        f"{method} {route}",
        span.context,
        span.parent,
        attributes,
        kind=SpanKind.SERVER,
        status=_ERROR if status >= 500 else _UNSET,
        start_ns=span.start_ns,
        end_ns=time.time_ns(),
        scope=_pipeline.scope,
    )


def report(
    name: str,
    context: SpanContext,
    parent: SpanContext | None,
    attributes: dict[str, AttributeValue],
    *,
    kind: SpanKind,
    status: Status,
    start_ns: int,
    end_ns: int,
    scope: "InstrumentationScope",
    events: "Sequence[Event]" = (),
    links: Sequence[Link] = (),
) -> None:
    """Hand a finished, sampled span to the processor (hops' and client spans alike)."""
    assert _pipeline is not None, "spans are reported only when ENABLED"
    _pipeline.processor.on_end(
        _pipeline.span(
            name,
            context,
            parent,
            _pipeline.resource,
            attributes,
            events,
            links,
            kind,
            status=status,
            start_time=start_ns,
            end_time=end_ns,
            instrumentation_scope=scope,
        )
    )


def decide_child(
    context: object,
    parent: SpanContext,
    *,
    name: str,
    kind: SpanKind,
    attributes: Mapping[str, AttributeValue] | None,
    links: Sequence[Link] | None,
) -> SpanContext | tuple[SpanContext, dict[str, AttributeValue]]:
    """A new span's context below parent (a span of this process, or none), as the SDK's
    tracer decides it: with the attributes to record when sampled, alone when not."""
    assert _pipeline is not None, "spans are started only when ENABLED"
    trace_id = parent.trace_id if parent.is_valid else _ids.getrandbits(128) or 1
    span_id = _ids.getrandbits(64) or 1
    if parent.is_valid and parent.trace_flags.sampled and _pipeline.follows_local_parent:
        own = SpanContext(trace_id, span_id, False, _SAMPLED, parent.trace_state)
        return own, dict(attributes or {})
    decided = _pipeline.sampler.should_sample(
        context,  # type: ignore[arg-type]
        trace_id,
        name,
        kind,
        attributes,
        links,
    )
    sampled = decided.decision.is_sampled()  # type: ignore[no-untyped-call]
    flags = _SAMPLED if sampled else TraceFlags(TraceFlags.DEFAULT)
    own = SpanContext(trace_id, span_id, False, flags, decided.trace_state)
    return (own, dict(decided.attributes or {})) if sampled else own


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
