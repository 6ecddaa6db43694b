"""Turning OpenTelemetry traces on, from the standard OTEL_* variables (off by default).

Traces are on when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set,
or OTEL_TRACES_EXPORTER=otlp|console; OTEL_SDK_DISABLED=true wins. Off, nothing of the SDK is
loaded and no client library is instrumented. On, the SDK reads the rest itself
(OTEL_TRACES_SAMPLER and _ARG, OTEL_BSP_*, the exporter's OTEL_EXPORTER_OTLP_* headers, timeout
and compression, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES). Spans leave over OTLP/HTTP
(protobuf) in batches, from the SDK's own thread. What a request does is svc_common.tracing.
"""

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from svc_common import tracing

if TYPE_CHECKING:  # the SDK is imported only when traces are on
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import TracerProvider


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
    """Why the OTEL_* variables cannot be honoured (the settings refuse to start on these)."""
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


def configure(service: str) -> bool:
    """Turn traces on for this process when the environment asks (once: the SDK's provider
    is global). Whether they are on."""
    if tracing.ENABLED or not wanted(os.environ):
        return tracing.ENABLED
    # An empty variable means the default, as in our settings (compose passes every variable
    # through, empty when .env leaves it out); the SDK would log each as a bad value.
    for name in [name for name, value in os.environ.items() if name.startswith("OTEL_")]:
        if not os.environ[name].strip():
            del os.environ[name]
    # Imported only now: the SDK, the exporter and the instrumentations cost about a second of
    # start-up and the memory of what they pull in (protobuf, wrapt).
    from opentelemetry import trace  # noqa: PLC0415
    from opentelemetry.instrumentation.redis import RedisInstrumentor  # noqa: PLC0415
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    # OTEL_SERVICE_NAME, when set, names the service; else SERVICE_NAME (server, server2, ...).
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes))
    processor = BatchSpanProcessor(_exporter())
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    tracing.enable(provider.sampler, provider.resource, processor)
    RedisInstrumentor().instrument(tracer_provider=_client_tracer_provider())
    tracing.quiet_outside_requests()
    return True


def _client_tracer_provider() -> "TracerProvider":
    # The client instrumentations' spans, made as cheaply as the hops' (tracing_client).
    from svc_common.tracing_client import ClientTracerProvider  # noqa: PLC0415

    return ClientTracerProvider()


def _exporter() -> "SpanExporter":
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter  # noqa: PLC0415

    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        return ConsoleSpanExporter()
    from svc_common.tracing_export import OtlpSpanExporter  # noqa: PLC0415

    return OtlpSpanExporter()


def instrument_engine(engine: object) -> None:
    """Client spans for every statement of this SQLAlchemy engine, when traces are on (the
    instrumentor is one per process: each service has one engine)."""
    if not tracing.ENABLED:
        return
    from opentelemetry.instrumentation.sqlalchemy import (  # noqa: PLC0415
        SQLAlchemyInstrumentor,
    )

    # Its release declares SQLAlchemy < 2.1; the events it hooks are unchanged in 2.1, which
    # common/pyproject.toml bounds and test_common_tracing checks.
    SQLAlchemyInstrumentor().instrument(
        engine=getattr(engine, "sync_engine", engine),
        tracer_provider=_client_tracer_provider(),
        enable_commenter=False,
        skip_dep_check=True,
    )
