"""Spans out over OTLP/HTTP: the SDK's exporter, with each batch encoded in one pass.

opentelemetry-exporter-otlp-proto-http encodes a batch span by span through generic helpers,
about 30 µs a span on our machines, on the export thread of a process that is serving
requests meanwhile. encode() builds the same ExportTraceServiceRequest from the same official
messages in about a quarter of that. Everything else (endpoint, headers, timeout, compression,
TLS, retries) stays the SDK exporter's, reached through its client: a private attribute, so
common/pyproject.toml bounds the exporter's version and test_common_tracing compares both
encodings and sends a batch through the client.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, SpanFlags, Status
from opentelemetry.sdk.trace.export import SpanExportResult

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext

logger = logging.getLogger(__name__)

_HAS_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


class OtlpSpanExporter(OTLPSpanExporter):
    """OTLPSpanExporter (configured by the same OTEL_EXPORTER_OTLP_* variables) with encode()."""

    def export(self, spans: Sequence["ReadableSpan"]) -> SpanExportResult:
        """Send one batch; a failure is logged by the client and reported to the processor."""
        if self._shutdown:
            return SpanExportResult.FAILURE
        try:
            body = encode(spans).SerializePartialToString()
        except Exception:
            logger.exception("could not encode %d spans", len(spans))
            return SpanExportResult.FAILURE
        sent = self._client.export(body)
        return SpanExportResult.SUCCESS if sent.success else SpanExportResult.FAILURE


# The order matters: a bool is an int too.
_SCALARS = (
    (bool, "bool_value"),
    (str, "string_value"),
    (int, "int_value"),
    (float, "double_value"),
    (bytes, "bytes_value"),
)


def _value(value: Any) -> AnyValue:
    for kind, field in _SCALARS:
        if isinstance(value, kind):
            encoded = AnyValue()
            setattr(encoded, field, value)
            return encoded
    if isinstance(value, Sequence):
        return AnyValue(array_value=ArrayValue(values=[_value(v) for v in value]))
    if value is None:
        return AnyValue()
    raise TypeError(f"attribute value of type {type(value).__name__}")


def _add(into: Any, attributes: Mapping[str, Any]) -> None:
    for key, value in attributes.items():
        # Strings are most attributes: they skip the type dispatch.
        if type(value) is str:
            into.add(key=key, value=AnyValue(string_value=value))
        else:
            into.add(key=key, value=_value(value))


def _flags(context: "SpanContext | None") -> int:
    return (
        _HAS_IS_REMOTE | _IS_REMOTE if context is not None and context.is_remote else _HAS_IS_REMOTE
    )


def encode(spans: Sequence["ReadableSpan"]) -> ExportTraceServiceRequest:
    """The ExportTraceServiceRequest of a batch, as the SDK exporter's encoder makes it."""
    request = ExportTraceServiceRequest()
    groups: dict[int, tuple[Any, dict[Any, ScopeSpans]]] = {}
    for span in spans:
        # One provider makes all of a process's spans: one resource object, a few scopes.
        resource = span.resource
        group = groups.get(id(resource))
        if group is None:
            resource_spans = request.resource_spans.add(schema_url=resource.schema_url)
            _add(resource_spans.resource.attributes, resource.attributes)
            group = groups[id(resource)] = (resource_spans, {})
        resource_spans, scopes = group
        scope = span.instrumentation_scope
        scope_spans = scopes.get(scope)
        if scope_spans is None:
            scope_spans = scopes[scope] = resource_spans.scope_spans.add()
            if scope is not None:
                scope_spans.schema_url = scope.schema_url or ""
                scope_spans.scope.name = scope.name
                scope_spans.scope.version = scope.version or ""
                _add(scope_spans.scope.attributes, scope.attributes or {})
            else:
                scope_spans.scope.SetInParent()
        _span(scope_spans.spans, span)
    return request


def _span(into: Any, span: "ReadableSpan") -> None:
    context, parent = span.context, span.parent
    assert context is not None, "the SDK ends only spans with a context"
    status = span.status
    out: Span = into.add(
        trace_id=context.trace_id.to_bytes(16, "big"),
        span_id=context.span_id.to_bytes(8, "big"),
        trace_state=",".join(f"{k}={v}" for k, v in context.trace_state.items()),
        parent_span_id=parent.span_id.to_bytes(8, "big") if parent is not None else b"",
        flags=_flags(parent),
        name=span.name,
        # SpanKind.INTERNAL is 0 in the API and 1 in OTLP, and so on.
        kind=span.kind.value + 1,
        start_time_unix_nano=span.start_time or 0,
        end_time_unix_nano=span.end_time or 0,
        dropped_attributes_count=span.dropped_attributes,
        dropped_events_count=span.dropped_events,
        dropped_links_count=span.dropped_links,
        # The API's status codes and OTLP's have the same numbers.
        status=Status(code=status.status_code.value, message=status.description or ""),  # type: ignore[arg-type]
    )
    _add(out.attributes, span.attributes or {})
    for event in span.events:
        encoded = out.events.add(
            name=event.name,
            time_unix_nano=event.timestamp,
            dropped_attributes_count=event.dropped_attributes,
        )
        _add(encoded.attributes, event.attributes or {})
    for link in span.links:
        encoded_link = out.links.add(
            trace_id=link.context.trace_id.to_bytes(16, "big"),
            span_id=link.context.span_id.to_bytes(8, "big"),
            dropped_attributes_count=link.dropped_attributes,
            flags=_flags(link.context),
        )
        _add(encoded_link.attributes, link.attributes or {})
