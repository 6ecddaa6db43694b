"""svc_common.tracing and tracing_setup: when traces are on, what a hop sends on and logs, and
the contracts with the SDK and the SQLAlchemy instrumentation."""

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanKind,
    Status,
    StatusCode,
    TraceState,
)
from opentelemetry.util.types import Attributes
from pydantic import ValidationError
from sqlalchemy import Engine, create_engine, text
from svc_common import trace_context, tracing, tracing_export, tracing_pipeline, tracing_setup
from svc_common.autopipeline import AutoPipeline
from svc_common.forwarding.headers import forward_headers, relayed_headers
from svc_common.settings import ServiceSettings
from svc_common.tracing_client import ClientTracerProvider
from typing_extensions import override

CLIENT_PARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Traces on for this test, into memory (configure() sets the process's provider once)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    monkeypatch.setattr(tracing, "ENABLED", tracing.ENABLED)
    monkeypatch.setattr(tracing_pipeline, "current", tracing_pipeline.current)
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    tracing.enable(provider.sampler, provider.resource, processor)
    yield exporter
    provider.shutdown()


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": ""},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
    ],
)
def test_traces_are_off_unless_an_exporter_is_asked_for(environ: dict[str, str]) -> None:
    assert not tracing_setup.wanted(environ)


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"},
        {"OTEL_TRACES_EXPORTER": "console"},
    ],
)
def test_an_endpoint_or_an_exporter_turns_traces_on(environ: dict[str, str]) -> None:
    assert tracing_setup.wanted(environ)
    assert tracing_setup.problems(environ) == []


def test_a_service_refuses_to_start_with_an_exporter_it_does_not_have(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ValidationError, match="only http/protobuf"):
        ServiceSettings(service_name="x", porta=1)


def test_with_traces_off_a_hop_passes_the_clients_traceparent_on_untouched() -> None:
    headers = [(b"traceparent", CLIENT_PARENT), (b"tracestate", b"vendor=1")]
    out = forward_headers(headers, client_ip="10.0.0.1", scheme="http", request_id="r")
    assert (b"traceparent", CLIENT_PARENT) in out
    assert (b"tracestate", b"vendor=1") in out


def _ids(traceparent: bytes) -> tuple[str, str, str]:
    version, trace_id, span_id, flags = traceparent.decode().split("-")
    assert version == "00"
    return trace_id, span_id, flags


def test_with_traces_on_a_hop_names_its_own_span_as_the_parent_of_the_next(
    exported: InMemorySpanExporter,
) -> None:
    headers = [(b"traceparent", CLIENT_PARENT), (b"tracestate", b"vendor=1")]
    hop = tracing.start("GET", "/itens/7", "/itens/{id}", headers)
    out = dict(
        forward_headers(headers, client_ip="10.0.0.1", scheme="http", request_id="r", hop=hop)
    )
    trace_id, parent_id, flags = _ids(out[b"traceparent"])
    assert (trace_id, flags) == ("0af7651916cd43dd8448eb211c80319c", "01")
    assert hop.span is not None
    assert parent_id == f"{hop.span.context.span_id:016x}"
    assert out[b"tracestate"] == b"vendor=1"
    tracing.finish(hop, "GET", "/itens/{id}", 200, {"backend": "http://s1:8002", "tries": 2})
    (finished,) = exported.get_finished_spans()
    assert finished.parent is not None
    assert f"{finished.parent.span_id:016x}" == "b7ad6b7169203331"
    assert finished.name == "GET /itens/{id}"
    assert finished.attributes is not None
    assert finished.attributes["lb.backend"] == "http://s1:8002"
    assert finished.attributes["lb.tries"] == 2
    assert finished.attributes["http.response.status_code"] == 200


def test_below_an_unsampled_caller_a_hop_records_nothing_and_sends_the_traceparent_on_as_is(
    exported: InMemorySpanExporter,
) -> None:
    unsampled = CLIENT_PARENT[:-2] + b"00"
    headers = [(b"traceparent", unsampled), (b"tracestate", b"vendor=1")]
    hop = tracing.start("GET", "/itens", "/itens", headers)
    assert hop.span is None
    out = forward_headers(headers, client_ip="10.0.0.1", scheme="http", request_id="r", hop=hop)
    assert [h for h in out if h[0] in trace_context.TRACE_HEADERS] == headers
    tracing.finish(hop, "GET", "/itens", 200, None)
    assert exported.get_finished_spans() == ()
    trace_id, span_id, _ = _ids(unsampled)
    assert tracing.log_ids(hop) == {"trace_id": trace_id, "span_id": span_id}


def test_only_a_hop_that_began_the_trace_answers_with_its_traceparent(
    exported: InMemorySpanExporter,
) -> None:
    began = tracing.start("GET", "/itens", "/itens", [])
    assert began.answer == ((b"traceparent", began.traceparent),)
    below = tracing.start("GET", "/itens", "/itens", [(b"traceparent", CLIENT_PARENT)])
    assert below.answer == ()


@pytest.mark.parametrize(
    "traceparent",
    [
        b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # 00 has no extra
        b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        b"00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero parent id
        b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",  # short flags
        b"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper case
        b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",  # short parent id
        b"00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",  # not hex
        b"00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01",  # not a dash
        b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-later",  # forbidden, later
        b"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01later",  # no dash before more
    ],
)
def test_a_bad_traceparent_starts_a_new_trace(
    exported: InMemorySpanExporter, traceparent: bytes
) -> None:
    hop = tracing.start("GET", "/itens", "/itens", [(b"traceparent", traceparent)])
    assert _ids(hop.traceparent)[0] != "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize(
    ("traceparent", "sampled"),
    [
        (b"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-later-fields", True),
        (b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09", True),  # more flags set
        (b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-02", False),
    ],
)
def test_a_hop_follows_a_good_traceparents_trace_and_sampled_flag(
    exported: InMemorySpanExporter, traceparent: bytes, *, sampled: bool
) -> None:
    hop = tracing.start("GET", "/itens", "/itens", [(b"traceparent", traceparent)])
    assert _ids(hop.traceparent)[0] == "0af7651916cd43dd8448eb211c80319c"
    assert (hop.span is not None) is sampled


def test_an_upstreams_traceparent_is_not_relayed_to_the_client() -> None:
    relayed = relayed_headers([(b"traceparent", CLIENT_PARENT), (b"etag", b'W/"1"')])
    assert relayed == [(b"etag", b'W/"1"')]


def test_a_5xx_marks_the_server_span_as_an_error(exported: InMemorySpanExporter) -> None:
    hop = tracing.start("GET", "/itens", "/itens", [])
    tracing.finish(hop, "GET", "/itens", 503, None)
    (finished,) = exported.get_finished_spans()
    assert finished.status.status_code.name == "ERROR"
    assert finished.parent is None  # no traceparent came in: a new trace


def test_log_ids_name_the_span_as_traceparent_does(exported: InMemorySpanExporter) -> None:
    hop = tracing.start("GET", "/itens", "/itens", [(b"traceparent", CLIENT_PARENT)])
    assert hop.span is not None
    ids = tracing.log_ids(hop)
    assert ids["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert ids["span_id"] == f"{hop.span.context.span_id:016x}"
    token = tracing.attach(hop)
    try:
        assert tracing.log_ids() == ids  # the current hop's, for lines logged in its context
    finally:
        tracing.detach(token)
    assert tracing.log_ids() == {}


def _statements(
    exported: InMemorySpanExporter, engine: Engine, traceparent: bytes
) -> list[ReadableSpan]:
    """The SELECT spans of one statement run under a hop of this caller."""
    exported.clear()
    hop = tracing.start("GET", "/itens", "/itens", [(b"traceparent", traceparent)])
    token = tracing.attach(hop)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    finally:
        tracing.detach(token)
        tracing.finish(hop, "GET", "/itens", 200, None)
    # (it also traces taking the connection, as a span named "connect")
    return [s for s in exported.get_finished_spans() if s.name.startswith("SELECT")]


def test_sqlalchemy_statements_are_client_spans_of_the_hop_unless_it_is_unsampled(
    exported: InMemorySpanExporter,
) -> None:
    # The instrumentation's release declares SQLAlchemy < 2.1: this pins that it works on
    # ours, and that it honours the API's suppression key, which attach() relies on.
    engine = create_engine("sqlite://")
    tracing_setup.instrument_engine(engine)
    try:
        (statement,) = _statements(exported, engine, CLIENT_PARENT)
        server = next(s for s in exported.get_finished_spans() if s.kind.name == "SERVER")
        assert statement.kind.name == "CLIENT"
        assert statement.attributes is not None
        assert statement.attributes.get("db.system") == "sqlite"
        assert statement.parent is not None
        assert statement.parent.span_id == server.context.span_id
        assert _statements(exported, engine, CLIENT_PARENT[:-2] + b"00") == []
    finally:
        SQLAlchemyInstrumentor().uninstrument()


def _encoded(span: ReadableSpan) -> ProtoSpan:
    """The span as OTLP sends it, minus what differs between any two spans (ids, times)."""
    (resource_spans,) = encode_spans([span]).resource_spans
    (scope_spans,) = resource_spans.scope_spans
    encoded: ProtoSpan = scope_spans.spans[0]
    for field in ("span_id", "start_time_unix_nano", "end_time_unix_nano"):
        encoded.ClearField(field)
    return encoded


def test_a_sampled_hop_reports_the_span_the_sdks_tracer_would_have_made(
    exported: InMemorySpanExporter,
) -> None:
    # tracing builds a sampled hop's span itself (the SDK's ReadableSpan, handed to the span
    # processor) instead of the tracer's Span: this pins that OTLP receives the same thing.
    headers = [(b"traceparent", CLIENT_PARENT), (b"tracestate", b"vendor=1")]
    hop = tracing.start("GET", "/itens/7", "/itens/{id}", headers)
    tracing.finish(hop, "GET", "/itens/{id}", 503, {"backend": "http://s1:8002", "tries": 2})
    (ours,) = exported.get_finished_spans()
    assert ours.parent is not None
    assert ours.attributes is not None
    theirs = (
        trace.get_tracer_provider()
        .get_tracer("svc_common")
        .start_span(
            "GET /itens/{id}",
            context=trace.set_span_in_context(NonRecordingSpan(ours.parent)),
            kind=SpanKind.SERVER,
            attributes=dict(ours.attributes),
        )
    )
    theirs.set_status(Status(StatusCode.ERROR))
    theirs.end()
    assert _encoded(ours) == _encoded(exported.get_finished_spans()[1])
    assert ours.context is not None
    assert ours.context.trace_state == TraceState([("vendor", "1")])


def test_the_configured_sampler_decides_for_a_new_trace(
    exported: InMemorySpanExporter,
) -> None:
    # (the fixture restores the pipeline this replaces)
    never = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0)))
    tracing.enable(never.sampler, never.resource, SimpleSpanProcessor(exported))
    hop = tracing.start("GET", "/itens", "/itens", [])
    assert hop.span is None
    assert hop.traceparent.endswith(b"-00")
    tracing.finish(hop, "GET", "/itens", 200, None)
    assert exported.get_finished_spans() == ()


@pytest.mark.parametrize(
    "sampler",
    [
        ALWAYS_ON,
        ALWAYS_OFF,
        TraceIdRatioBased(0.5),
        TraceIdRatioBased(1e-05),
        ParentBased(ALWAYS_OFF),
        ParentBased(TraceIdRatioBased(0.1)),
        ParentBased(TraceIdRatioBased(1.0)),
    ],
    ids=lambda sampler: sampler.get_description(),
)
def test_a_new_trace_is_sampled_exactly_when_the_sdks_sampler_says_so(
    exported: InMemorySpanExporter, sampler: Sampler
) -> None:
    # These decide by trace id alone, which start() then tests inline.
    tracing.enable(sampler, Resource.create({}), SimpleSpanProcessor(exported))
    for _ in range(2000):
        hop = tracing.start("GET", "/itens", "/itens", [])
        trace_id = int(_ids(hop.traceparent)[0], 16)
        decided = sampler.should_sample(None, trace_id, "GET /itens", SpanKind.SERVER, {})
        assert (hop.span is not None) == decided.decision.is_sampled()


class _ListingsOnly(Sampler):
    """A sampler of a kind start() knows nothing of: it is asked for every new trace."""

    @override
    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        decision = Decision.RECORD_AND_SAMPLE if name == "GET /itens" else Decision.DROP
        return SamplingResult(decision, {"sampled.by": "listings"})

    def get_description(self) -> str:
        return "ListingsOnly"


def test_a_sampler_of_another_kind_is_asked_and_its_attributes_kept(
    exported: InMemorySpanExporter,
) -> None:
    tracing.enable(_ListingsOnly(), Resource.create({}), SimpleSpanProcessor(exported))
    listing = tracing.start("GET", "/itens", "/itens", [])
    assert tracing.start("GET", "/itens/7", "/itens/{id}", []).span is None
    tracing.finish(listing, "GET", "/itens", 200, None)
    (span,) = exported.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["sampled.by"] == "listings"


class _Trips:
    """A Redis client whose pipelines report, as each executes, whether client
    instrumentations are quiet and under which span they would report; each trip then waits
    to be let go."""

    def __init__(self) -> None:
        self.seen: asyncio.Queue[tuple[object, int]] = asyncio.Queue()
        self.go = asyncio.Event()

    def pipeline(self, transaction: bool = True) -> Any:
        trips = self

        class Pipe:
            commands = 0

            def execute_command(self, *_: Any) -> None:
                self.commands += 1

            async def execute(self, raise_on_error: bool = True) -> list[Any]:
                current = trace.get_current_span().get_span_context().span_id
                trips.seen.put_nowait(
                    (otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY), current)
                )
                await trips.go.wait()
                trips.go.clear()
                return [b"OK"] * self.commands

        return Pipe()


async def test_a_shared_redis_trip_reports_under_the_request_that_opened_it_if_sampled(
    exported: InMemorySpanExporter,
) -> None:
    trips = _Trips()
    pipeline = AutoPipeline(trips)  # type: ignore[arg-type]
    unsampled = [(b"traceparent", CLIENT_PARENT[:-2] + b"00")]
    sampled = [(b"traceparent", CLIENT_PARENT)]
    first, second, third, fourth = (
        tracing.start("GET", "/itens", "/itens", headers)
        for headers in (sampled, unsampled, sampled, sampled)
    )
    assert first.span is not None
    assert fourth.span is not None

    async def call(hop: tracing.Hop) -> list[Any]:
        token = tracing.attach(hop)
        try:
            return await pipeline.run(("GET", "k"))
        finally:
            tracing.detach(token)

    # The first request starts the drain (in the pipeline's own context); the later ones join
    # the pending commands while a trip is in flight, and ride the next trip of the same drain.
    calls = [asyncio.create_task(call(first))]
    seen = [await trips.seen.get()]
    for hops in ((second, third), (fourth,)):
        calls += [asyncio.create_task(call(hop)) for hop in hops]
        await asyncio.sleep(0)
        trips.go.set()
        seen.append(await trips.seen.get())
    trips.go.set()
    assert await asyncio.gather(*calls) == [[b"OK"]] * 4
    assert seen[0] == (False, first.span.context.span_id)
    assert seen[1][0], "opened by an unsampled request: no span, whoever began the drain"
    assert seen[2] == (False, fourth.span.context.span_id)


def test_outside_a_request_client_instrumentations_make_no_spans(
    exported: InMemorySpanExporter,
) -> None:
    # A health check's SELECT 1 or a background sweep would each start a trace of its own.
    engine = create_engine("sqlite://")
    tracing_setup.instrument_engine(engine)
    token = tracing.quiet_outside_requests()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        assert exported.get_finished_spans() == ()
        (statement,) = _statements(exported, engine, CLIENT_PARENT)
        assert statement.parent is not None
        assert _statements(exported, engine, CLIENT_PARENT[:-2] + b"00") == []
    finally:
        otel_context.detach(token)  # type: ignore[arg-type]
        SQLAlchemyInstrumentor().uninstrument()


def _client_spans(parent: tracing.Hop | None) -> None:
    """What an instrumentation does with a client span, through our tracer and the SDK's."""
    token = tracing.client_spans_under(parent) if parent is not None else None
    try:
        for provider in (ClientTracerProvider(), trace.get_tracer_provider()):
            tracer = provider.get_tracer("opentelemetry.instrumentation.redis", "0.1", "s://1")
            with (
                contextlib.suppress(ValueError),
                tracer.start_as_current_span(
                    "EVALSHA", kind=SpanKind.CLIENT, attributes={"db.system": "redis"}
                ) as span,
            ):
                span.set_attributes({"db.redis.args_length": 3, "nothing": None})
                span.set_attribute("db.statement", ["EVALSHA", "x"])
                span.add_event("retry", {"try": 2}, timestamp=5)
                span.add_link(span.get_span_context(), {"why": "retry"})
                span.update_name("EVALSHA x")
                raise ValueError("gone")  # recorded, and the status set, by the API's use_span
    finally:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]


@pytest.mark.parametrize("caller", [CLIENT_PARENT, None], ids=["below a sampled hop", "alone"])
def test_a_client_span_is_the_span_the_sdks_tracer_would_have_made(
    exported: InMemorySpanExporter, caller: bytes | None
) -> None:
    # The client instrumentations get tracing_client's tracer, which hands the processor a
    # ReadableSpan itself rather than building the SDK's Span: OTLP receives the same thing.
    hop = None
    if caller is not None:
        hop = tracing.start("GET", "/itens/7", "/itens/{id}", [(b"traceparent", caller)])
    _client_spans(hop)
    ours, theirs = exported.get_finished_spans()
    assert isinstance(ours.parent, type(theirs.parent))
    if hop is not None:
        assert hop.span is not None
        assert ours.parent is not None
        assert ours.parent.span_id == hop.span.context.span_id
        assert ours.context.trace_id == hop.span.context.trace_id
    assert ours.status.status_code is StatusCode.ERROR
    mine, sdks = _encoded(ours), _encoded(theirs)
    for encoded in (mine, sdks):
        for event in encoded.events:
            if event.name == "exception":  # at its own time, through each tracer's frames
                event.ClearField("time_unix_nano")
                for attribute in event.attributes:
                    if attribute.key == "exception.stacktrace":
                        text = attribute.value.string_value
                        attribute.value.string_value = text.splitlines()[-1]
        for link in encoded.links:  # each links to itself
            link.ClearField("span_id")
            link.ClearField("trace_id")
        if hop is None:  # a new trace each
            encoded.ClearField("trace_id")
    assert mine == sdks


def test_a_client_span_used_as_a_context_manager_records_what_left_it_as_the_sdks_does(
    exported: InMemorySpanExporter,
) -> None:
    hop = tracing.start("GET", "/itens/7", "/itens/{id}", [(b"traceparent", CLIENT_PARENT)])
    token = tracing.client_spans_under(hop)
    try:
        for provider in (ClientTracerProvider(), trace.get_tracer_provider()):
            tracer = provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
            with contextlib.suppress(ValueError), tracer.start_span("SELECT", kind=SpanKind.CLIENT):
                raise ValueError("gone")
    finally:
        otel_context.detach(token)  # type: ignore[arg-type]
    ours, theirs = exported.get_finished_spans()
    assert ours.status.status_code is StatusCode.ERROR
    assert [e.name for e in ours.events] == [e.name for e in theirs.events] == ["exception"]
    assert ours.events[0].attributes == {
        **dict(theirs.events[0].attributes or {}),
        "exception.stacktrace": (ours.events[0].attributes or {})["exception.stacktrace"],
    }
    assert ours.status.description == theirs.status.description


def test_a_client_span_below_an_unsampled_hop_records_nothing(
    exported: InMemorySpanExporter,
) -> None:
    unsampled = [(b"traceparent", CLIENT_PARENT[:-2] + b"00")]
    hop = tracing.start("GET", "/itens/7", "/itens/{id}", unsampled)
    assert hop.span is None
    span = (
        ClientTracerProvider()
        .get_tracer("x")
        .start_span("GET", context=trace.set_span_in_context(NonRecordingSpan(_context(hop))))
    )
    assert not span.is_recording()
    span.end()
    assert exported.get_finished_spans() == ()


def _context(hop: tracing.Hop) -> trace.SpanContext:
    _, trace_id, span_id, flags = hop.traceparent.split(b"-")
    sampled = trace.TraceFlags(int(flags, 16))
    return trace.SpanContext(int(trace_id, 16), int(span_id, 16), False, sampled)


def test_the_export_encoding_equals_the_sdk_exporters(exported: InMemorySpanExporter) -> None:
    # tracing_export.encode replaces the SDK exporter's encoder (four times slower): the same
    # request for a batch of every kind of span and attribute a process sends (a hop's, a
    # client instrumentation's, and one of the SDK's own tracer).
    hop = tracing.start("GET", "/itens/7", "/itens/{id}", [(b"traceparent", CLIENT_PARENT)])
    tracing.finish(hop, "GET", "/itens/{id}", 200, {"backend": "http://s1:8002", "tries": 2})
    provider = trace.get_tracer_provider()
    redis = ClientTracerProvider().get_tracer(
        "opentelemetry.instrumentation.redis", "0.51b0", "https://s/1"
    )
    with redis.start_as_current_span("EVALSHA", kind=SpanKind.CLIENT) as client:
        client.set_attributes({"db.redis.args_length": 3, "ratio": 0.5, "ok": True, "n": -2})
        client.set_attributes({"empty": "", "zero": 0, "no": False, "long": "x" * 300})
        client.set_attribute("sparse", ["a", None, "b"])
        client.set_attribute("raw", b"\x00\xff")
        client.set_attribute("db.statement", ["EVALSHA", "x"])
        client.record_exception(ValueError("gone"))
        client.add_link(client.get_span_context(), {"why": "retry"})
        client.set_status(Status(StatusCode.ERROR, "gone"))
    sweep = provider.get_tracer("svc_common").start_span("sweep")
    sweep.add_event("tick", {"n": 1})
    sweep.add_link(client.get_span_context())
    sweep.end()
    spans = exported.get_finished_spans()
    assert len(spans) == 3
    assert tracing_export.encode(spans) == encode_spans(spans).SerializeToString()


def test_the_export_encoding_equals_the_sdk_exporters_with_trace_state_and_dropped_fields(
    exported: InMemorySpanExporter,
) -> None:
    # The encoder reads the spans' own fields: a caller's tracestate, a local parent, and what
    # the SDK's limits dropped (its bounded attributes, events and links) come out the same.
    hop = tracing.start(
        "GET",
        "/itens/7",
        "/itens/{id}",
        [(b"traceparent", CLIENT_PARENT), (b"tracestate", b"vendor=1,other=x")],
    )
    tracing.finish(hop, "GET", "/itens/{id}", 503, None)
    # The process's one resource object (the encoder groups spans by it, as a process has one).
    limited = TracerProvider(
        resource=trace.get_tracer_provider().resource,  # type: ignore[attr-defined]
        span_limits=SpanLimits(max_span_attributes=1, max_events=1, max_links=1),
    )
    limited.add_span_processor(SimpleSpanProcessor(exported))
    tracer = limited.get_tracer("svc_common")
    with tracer.start_as_current_span("parent", attributes={"a": 1, "b": 2}) as parent:
        parent.add_event("one")
        parent.add_event("two")
        # Links to a span without a tracestate: the SDK's encoder leaves a link's out.
        link = Link(parent.get_span_context())
        tracer.start_span("child", links=[link, link]).end()
    spans = exported.get_finished_spans()
    assert len(spans) == 3
    assert spans[0].context is not None
    assert spans[0].context.trace_state == TraceState([("vendor", "1"), ("other", "x")])
    assert tracing_export.encode(spans) == encode_spans(spans).SerializeToString()


def test_attributes_encoded_once_are_reused_only_for_the_same_value_and_type(
    exported: InMemorySpanExporter,
) -> None:
    # tracing_export keeps the pairs it encoded: 1, True and 1.0 are equal keys in a dict but
    # three values on the wire, and a long string is encoded anew each time.
    tracer = trace.get_tracer_provider().get_tracer("svc_common")
    for value in (1, True, 1.0, 1, True, "x" * 300, "x" * 300):
        tracer.start_span("same key", attributes={"k": value}).end()
    spans = exported.get_finished_spans()
    assert tracing_export.encode(spans) == encode_spans(spans).SerializeToString()
