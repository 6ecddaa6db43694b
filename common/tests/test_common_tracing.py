"""svc_common.tracing: when traces are on, what a hop sends on, and the SQLAlchemy contract."""

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError
from sqlalchemy import create_engine, text
from svc_common import tracing
from svc_common.forwarding.headers import forward_headers, relayed_headers
from svc_common.settings import ServiceSettings

CLIENT_PARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Traces on for this test, into memory (configure() sets the process's provider once)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "ENABLED", True)
    monkeypatch.setattr(tracing, "_provider", provider)
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
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
    assert not tracing.wanted(environ)


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"},
        {"OTEL_TRACES_EXPORTER": "console"},
    ],
)
def test_an_endpoint_or_an_exporter_turns_traces_on(environ: dict[str, str]) -> None:
    assert tracing.wanted(environ)
    assert tracing.problems(environ) == []


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


def test_with_traces_on_a_hop_names_its_own_span_as_the_parent_of_the_next(
    exported: InMemorySpanExporter,
) -> None:
    headers = [(b"traceparent", CLIENT_PARENT), (b"tracestate", b"vendor=1")]
    span = tracing.start("GET", "/itens/7", "/itens/{id}", headers)
    out = dict(
        forward_headers(headers, client_ip="10.0.0.1", scheme="http", request_id="r", span=span)
    )
    _, trace_id, parent_id, _ = out[b"traceparent"].decode().split("-")
    assert trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert parent_id == f"{span.get_span_context().span_id:016x}"
    assert out[b"tracestate"] == b"vendor=1"
    tracing.finish(span, "GET", "/itens/{id}", 200, {"backend": "http://s1:8002", "tries": 2})
    (finished,) = exported.get_finished_spans()
    assert finished.parent is not None
    assert f"{finished.parent.span_id:016x}" == "b7ad6b7169203331"
    assert finished.name == "GET /itens/{id}"
    assert finished.attributes is not None
    assert finished.attributes["lb.backend"] == "http://s1:8002"
    assert finished.attributes["lb.tries"] == 2
    assert finished.attributes["http.response.status_code"] == 200


def test_an_upstreams_traceparent_is_not_relayed_to_the_client() -> None:
    relayed = relayed_headers([(b"traceparent", CLIENT_PARENT), (b"etag", b'W/"1"')])
    assert relayed == [(b"etag", b'W/"1"')]


def test_a_5xx_marks_the_server_span_as_an_error(exported: InMemorySpanExporter) -> None:
    span = tracing.start("GET", "/itens", "/itens", [])
    tracing.finish(span, "GET", "/itens", 503, None)
    (finished,) = exported.get_finished_spans()
    assert finished.status.status_code.name == "ERROR"
    assert finished.parent is None  # no traceparent came in: a new trace


def test_log_ids_name_the_span_in_the_form_traceparent_uses(
    exported: InMemorySpanExporter,
) -> None:
    span = tracing.start("GET", "/itens", "/itens", [(b"traceparent", CLIENT_PARENT)])
    ids = tracing.log_ids(span)
    assert ids["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert ids["span_id"] == f"{span.get_span_context().span_id:016x}"
    span.end()


def test_the_sqlalchemy_instrumentation_gives_a_client_span_per_statement_on_this_release(
    exported: InMemorySpanExporter,
) -> None:
    # The instrumentation's release declares SQLAlchemy < 2.1; this pins that it works on ours.
    engine = create_engine("sqlite://")
    tracing.instrument_engine(engine)
    span = tracing.start("GET", "/itens", "/itens", [])
    token = tracing.attach(span)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    finally:
        tracing.detach(token)
        span.end()
    # (it also traces taking the connection, as a span named "connect")
    statements = [s for s in exported.get_finished_spans() if s.name.startswith("SELECT")]
    assert len(statements) == 1, [s.name for s in exported.get_finished_spans()]
    (statement,) = statements
    assert statement.kind.name == "CLIENT"
    assert statement.attributes is not None
    assert statement.attributes.get("db.system") == "sqlite"
    assert statement.parent is not None
    assert statement.parent.span_id == span.get_span_context().span_id
