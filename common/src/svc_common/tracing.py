"""OpenTelemetry traces: one server span per hop, the same on the lane and the ASGI path.

Off unless the standard variables ask for it: OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), or OTEL_TRACES_EXPORTER=otlp|console; OTEL_SDK_DISABLED=true
wins. Off, nothing here runs on a request: callers test ENABLED first, incoming traceparent
headers pass through untouched, and no client library is instrumented. On, the SDK reads the
rest of its configuration itself (OTEL_TRACES_SAMPLER and _ARG, OTEL_BSP_*, the exporter's
OTEL_EXPORTER_OTLP_* headers, timeout and compression, OTEL_RESOURCE_ATTRIBUTES); spans leave
over OTLP/HTTP (protobuf) in batches, from the SDK's own thread.
"""

import os
from collections.abc import Iterable, Mapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

# Read on every request by both paths; set once, by configure().
ENABLED = False
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
# Where the ASGI scope carries a span the lane started, for a request it hands over (TO_ASGI).
SCOPE_KEY = "otel_span"
# Headers a span's context is written to, upstream and back to the client.
TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})
# Access-line fields a proxy reports, as span attributes.
_ATTRIBUTES = {"backend": "lb.backend", "tries": "lb.tries"}


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether the OTEL_* variables ask for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def problems(environ: Mapping[str, str]) -> list[str]:
    """Why the OTEL_* variables cannot be honoured (settings refuse to start on these)."""
    if not wanted(environ):
        return []
    found = []
    exporter = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter not in {"otlp", "console"}:
        found.append(f"OTEL_TRACES_EXPORTER={exporter}: use otlp, console or none")
    for name in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        protocol = environ.get(name, "http/protobuf").strip().lower() or "http/protobuf"
        if protocol != "http/protobuf":
            found.append(f"{name}={protocol}: only http/protobuf (OTLP/HTTP) is supported")
    return found


def _exporter(environ: Mapping[str, str]) -> SpanExporter:
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        return ConsoleSpanExporter()
    # Imported only when traces are on, as the instrumentations: each costs about a quarter
    # of a second at start and the memory of what it pulls in (protobuf, wrapt).
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    return OTLPSpanExporter()


def configure(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Turn traces on for this process when the environment asks (once; later calls keep the
    first provider). Returns ENABLED."""
    global ENABLED, _tracer, _provider  # noqa: PLW0603 - one provider per process, as the SDK's
    if ENABLED or not wanted(environ):
        return ENABLED
    # An empty variable means the default, as in our settings (compose passes every variable
    # through, empty when .env leaves it out); the SDK would log it as a bad value.
    for name in [name for name, value in os.environ.items() if name.startswith("OTEL_")]:
        if not os.environ[name].strip():
            del os.environ[name]
    # OTEL_SERVICE_NAME, when set, names the service; else SERVICE_NAME (server, server2, ...).
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(_exporter(environ)))
    trace.set_tracer_provider(provider)
    _provider, _tracer = provider, provider.get_tracer("svc_common")
    from opentelemetry.instrumentation.redis import RedisInstrumentor  # noqa: PLC0415

    RedisInstrumentor().instrument(tracer_provider=provider)
    ENABLED = True
    return True


def instrument_engine(engine: object) -> None:
    """Client spans for every statement of this SQLAlchemy engine (its sync_engine)."""
    if not ENABLED:
        return
    from opentelemetry.instrumentation.sqlalchemy import (  # noqa: PLC0415
        SQLAlchemyInstrumentor,
    )

    sync_engine = getattr(engine, "sync_engine", engine)
    # Its release declares SQLAlchemy < 2.1; the events it hooks are unchanged in 2.1, which
    # common/pyproject.toml bounds and test_common_tracing checks.
    SQLAlchemyInstrumentor().instrument(
        engine=sync_engine, tracer_provider=_provider, enable_commenter=False, skip_dep_check=True
    )


class _HeaderGetter(Getter[Iterable[tuple[bytes, bytes]]]):
    """Reads propagation headers from raw (lower-case name, value) pairs."""

    def get(self, carrier: Iterable[tuple[bytes, bytes]], key: str) -> list[str] | None:
        name = key.encode()
        found = [value.decode("latin-1") for header, value in carrier if header == name]
        return found or None

    def keys(self, carrier: Iterable[tuple[bytes, bytes]]) -> list[str]:
        return [header.decode("latin-1") for header, _ in carrier]


_GETTER = _HeaderGetter()


def start(method: str, path: str, route: str, headers: list[tuple[bytes, bytes]]) -> Span:
    """The server span of one request, child of the caller's traceparent if it sent one."""
    assert _tracer is not None, "start() is called only when ENABLED"
    parent = propagate.extract(headers, getter=_GETTER)
    span = _tracer.start_span(f"{method} {route}", context=parent, kind=SpanKind.SERVER)
    if span.is_recording():
        span.set_attributes({"http.request.method": method, "url.path": path, "http.route": route})
    return span


def finish(
    span: Span, method: str, route: str, status: int, extra: Mapping[str, object] | None
) -> None:
    """End the span with the route template (known only now on the ASGI path), the answer's
    status and what a proxy reports (the backend chosen, how many tries)."""
    if span.is_recording():
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        for key, value in (extra or {}).items():
            name = _ATTRIBUTES.get(key)
            if name is not None and isinstance(value, str | int):
                span.set_attribute(name, value)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
    span.end()


def in_context(span: Span) -> Context:
    """A context whose current span is this one (for the task that answers the request)."""
    return trace.set_span_in_context(span)


def attach(span: Span) -> object:
    """Make span current in this context; detach(token) undoes it."""
    return otel_context.attach(trace.set_span_in_context(span))


def detach(token: object) -> None:
    """Undo attach()."""
    otel_context.detach(token)  # type: ignore[arg-type]


def current() -> Span | None:
    """The span current in this context, when traces are on and there is one."""
    if not ENABLED:
        return None
    span = trace.get_current_span()
    return span if span.get_span_context().is_valid else None


def headers(span: Span) -> list[tuple[bytes, bytes]]:
    """traceparent (and tracestate) naming span as the parent, for the next hop or the client."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return [(name.encode(), value.encode("latin-1")) for name, value in carrier.items()]


def log_ids(span: Span | None = None) -> dict[str, str]:
    """trace_id and span_id of span (else of the current one) for a log line; {} without."""
    if not ENABLED:
        return {}
    context = (span or trace.get_current_span()).get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
