"""Spans out over OTLP/HTTP: the SDK's exporter, with each batch written straight to bytes.

opentelemetry-exporter-otlp-proto-http builds a message object per span, attribute and value
and then serialises them, on the export thread of a process that is serving requests meanwhile
(and holds the GIL for it). encode() writes the same ExportTraceServiceRequest in protobuf's
wire format directly, in a fraction of that time (docs/tracing.md, "What it costs"), reading
each span's fields rather than its properties. Everything else (endpoint, headers, timeout,
compression, TLS, retries) stays the SDK exporter's, reached through its client. The fields and
the client are private to the SDK, so common/pyproject.toml bounds its versions and
test_common_tracing compares both encodings byte for byte and sends a batch through the
client.
"""

import logging
import struct
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import StatusCode

from svc_common.tracing_pipeline import UNSET

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, Status

logger = logging.getLogger(__name__)

# opentelemetry/proto/trace/v1/trace.proto: SpanFlags.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


class OtlpSpanExporter(OTLPSpanExporter):
    """OTLPSpanExporter (configured by the same OTEL_EXPORTER_OTLP_* variables) with encode()."""

    def export(self, spans: Sequence["ReadableSpan"]) -> SpanExportResult:
        """Send one batch; a failure is logged by the client and reported to the processor."""
        if self._shutdown:
            return SpanExportResult.FAILURE
        try:
            body = encode(spans)
        except Exception:
            logger.exception("could not encode %d spans", len(spans))
            return SpanExportResult.FAILURE
        sent = self._client.export(body)
        return SpanExportResult.SUCCESS if sent.success else SpanExportResult.FAILURE


_DOUBLE = struct.Struct("<d").pack
_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_INT64 = 1 << 64  # a negative int64 goes on the wire as its two's complement


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# The varints of the lengths most fields have, written once.
_SIZES = [_varint(size) for size in range(4096)]


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag (field number and wire type), length, payload."""
    size = len(payload)
    return tag + (_SIZES[size] if size < 4096 else _varint(size)) + payload


def _number(tag: bytes, n: int) -> bytes:
    """A varint field, left out when 0 (proto3)."""
    return tag + _varint(n) if n else b""


def _text(tag: bytes, text: str) -> bytes:
    """A string field, left out when empty (proto3)."""
    return _field(tag, text.encode()) if text else b""


@lru_cache(maxsize=1024)
def _key(key: str) -> bytes:
    """KeyValue.key: the few attribute names a process uses, encoded once."""
    return _field(b"\x0a", key.encode())


def _int64(value: int) -> bytes:
    if 0 <= value < 0x80:
        return b"\x18" + bytes((value,))
    return b"\x18" + _varint(value + _INT64 if value < 0 else value)


# AnyValue's scalar fields (a oneof: a default value such as 0 or "" is still written), bool
# before int for the isinstance look-up (a bool is an int too).
_SCALARS: dict[type, Callable[[Any], bytes]] = {
    str: lambda value: _field(b"\x0a", value.encode()),
    bool: lambda value: b"\x10\x01" if value else b"\x10\x00",
    int: _int64,
    float: lambda value: b"\x21" + _DOUBLE(value),
    bytes: lambda value: _field(b"\x3a", value),
}


def _value(value: Any) -> bytes:
    """An AnyValue."""
    write = _SCALARS.get(type(value))
    if write is None:  # a subclass (an enum of str, say), or not a scalar
        write = next((w for kind, w in _SCALARS.items() if isinstance(value, kind)), None)
    if write is not None:
        return write(value)
    if value is None:
        return b""
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _value(v)) for v in value))
    raise TypeError(f"attribute value of type {type(value).__name__}")


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Repeated KeyValue fields."""
    if not attributes:
        return b""
    parts = []
    for key, value in attributes.items():
        # Most pairs repeat (method, route, status, backend, the Redis or SQL statement): a
        # short string's or an int's pair is encoded once. Not a bool's or a float's: 1, True
        # and 1.0 are one key in a dict but three values on the wire. Long strings (a stack
        # trace, a client's odd path) are encoded anew.
        kind = type(value)
        if kind is int or (kind is str and len(value) <= _LONGEST_KEPT):
            pair = _known.get((tag, key, value))
            if pair is None:
                if len(_known) >= _MOST_KEPT:
                    _known.clear()
                pair = _known[tag, key, value] = _pair(tag, key, value)
            parts.append(pair)
        else:
            parts.append(_pair(tag, key, value))
    return b"".join(parts)


_LONGEST_KEPT = 200
_MOST_KEPT = 4096  # pairs of a few hundred bytes at most
_known: dict[tuple[bytes, str, str | int], bytes] = {}


def _pair(tag: bytes, key: str, value: Any) -> bytes:
    """One KeyValue field."""
    if type(value) is str:  # most attributes: no dispatch, and short
        encoded = value.encode()
        size = len(encoded)
        if size < 0x7E:
            pair = _key(key) + b"\x12" + bytes((size + 2, 0x0A, size)) + encoded
        else:
            pair = _key(key) + _field(b"\x12", _field(b"\x0a", encoded))
    else:
        pair = _key(key) + _field(b"\x12", _value(value))
    size = len(pair)
    return tag + bytes((size,)) + pair if size < 0x80 else _field(tag, pair)


def _flags(context: "SpanContext | None") -> bytes:
    remote = context is not None and context.is_remote
    return _FIXED32(_HAS_IS_REMOTE | _IS_REMOTE if remote else _HAS_IS_REMOTE)


# Span.kind (the API's SpanKind value + 1), Span.flags and the status of most spans, written
# once; span names (a route, a Redis command) too, as a process has few of them.
_KINDS = [b"\x30" + bytes((kind + 1,)) for kind in range(5)]
_LOCAL_PARENT = b"\x85\x01" + _FIXED32(_HAS_IS_REMOTE)
_REMOTE_PARENT = b"\x85\x01" + _FIXED32(_HAS_IS_REMOTE | _IS_REMOTE)
_UNSET = b"\x7a\x00"  # Status with code UNSET (0) and no description: an empty message
_names: dict[str, bytes] = {}


def _trace_state(context: "SpanContext") -> str:
    state = context.trace_state
    return ",".join(f"{k}={v}" for k, v in state.items()) if state else ""


def _name(name: str) -> bytes:
    field = _names.get(name)
    if field is None:
        field = _text(b"\x2a", name)
        if len(_names) < _MOST_KEPT:
            _names[name] = field
    return field


def _status(status: "Status") -> bytes:
    if status is UNSET:  # what our spans end with unless they failed
        return _UNSET
    code = status.status_code
    if code is StatusCode.UNSET and not status.description:
        return _UNSET
    # The API's status codes and OTLP's have the same numbers; the status is always written.
    return _field(b"\x7a", _text(b"\x12", status.description or "") + _number(b"\x18", code.value))


def _span(span: "ReadableSpan", fields: dict[str, Any]) -> bytes:
    """ScopeSpans.spans: a Span (opentelemetry/proto/trace/v1/trace.proto), its fields in
    number order, read from the span's own fields (vars(span))."""
    context, parent = fields["_context"], fields["_parent"]
    assert context is not None, "the SDK ends only spans with a context"
    trace_id, span_id, _, _, trace_state, _ = context
    start, end = fields["_start_time"], fields["_end_time"]
    attributes, events, links = fields["_attributes"], fields["_events"], fields["_links"]
    out = b"\x0a\x10" + trace_id.to_bytes(16, "big") + b"\x12\x08" + span_id.to_bytes(8, "big")
    if trace_state:
        out += _text(b"\x1a", _trace_state(context))
    if parent is not None:
        out += b"\x22\x08" + parent[1].to_bytes(8, "big")
    out += (
        _name(fields["_name"])
        # SpanKind.INTERNAL is 0 in the API and 1 in OTLP, and so on (_value_: the member's
        # value as a plain attribute, where .value is a descriptor call).
        + _KINDS[fields["_kind"]._value_]
        + (b"\x39" + _FIXED64(start) if start else b"")
        + (b"\x41" + _FIXED64(end) if end else b"")
        + _attributes(b"\x4a", attributes)
    )
    # Our spans' attributes are a dict and their events and links a list or a tuple; the
    # SDK's own Span bounds them, and counts what it dropped.
    if type(attributes) is not dict and span.dropped_attributes:
        out += _number(b"\x50", span.dropped_attributes)
    if events or links or type(events) not in _PLAIN or type(links) not in _PLAIN:
        out += _events_and_links(span)
    out += _status(fields["_status"]) + (
        _REMOTE_PARENT if parent is not None and parent[2] else _LOCAL_PARENT
    )
    return _field(b"\x12", out)  # ScopeSpans.spans


_PLAIN = (tuple, list)


def _events_and_links(span: "ReadableSpan") -> bytes:
    """Span fields 11 to 14 (a link's tracestate too, which the SDK's encoder leaves out)."""
    parts = []
    for event in span.events:
        encoded = (b"\x09" + _FIXED64(event.timestamp) if event.timestamp else b"") + (
            _text(b"\x12", event.name)
            + _attributes(b"\x1a", event.attributes)
            + _number(b"\x20", event.dropped_attributes)
        )
        parts.append(_field(b"\x5a", encoded))
    parts.append(_number(b"\x60", span.dropped_events))
    for link in span.links:
        encoded = (
            b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big")
            + b"\x12\x08" + link.context.span_id.to_bytes(8, "big")
            + _text(b"\x1a", _trace_state(link.context))
            + _attributes(b"\x22", link.attributes)
            + _number(b"\x28", link.dropped_attributes)
            + b"\x35" + _flags(link.context)
        )  # fmt: skip
        parts.append(_field(b"\x6a", encoded))
    parts.append(_number(b"\x70", span.dropped_links))
    return b"".join(parts)


def _scope(scope: "InstrumentationScope | None") -> bytes:
    """ScopeSpans.scope, written (empty) even for spans without one, as the SDK does."""
    if scope is None:
        return b"\x0a\x00"
    return _field(
        b"\x0a",
        _text(b"\x0a", scope.name)
        + _text(b"\x12", scope.version or "")
        + _attributes(b"\x1a", scope.attributes),
    )


def encode(spans: Sequence["ReadableSpan"]) -> bytes:
    """The ExportTraceServiceRequest of a batch, byte for byte as the SDK exporter's encoder
    makes it: spans grouped by resource, then by instrumentation scope, in order of arrival."""
    groups: dict[int, tuple[Resource, dict[Any, list[bytes]]]] = {}
    for span in spans:
        # One provider makes all of a process's spans: one resource object, a few scopes.
        # ReadableSpan's own fields and SpanContext's tuple, not their properties: a call
        # each, and copies of the attributes, events and links, were a quarter of a span's
        # encoding. Private to the SDK and the API, so common/pyproject.toml bounds them.
        fields = vars(span)
        resource = fields["_resource"]
        group = groups.get(id(resource))
        if group is None:
            group = groups[id(resource)] = (resource, {})
        group[1].setdefault(fields["_instrumentation_scope"], []).append(_span(span, fields))
    out = []
    for resource, scopes in groups.values():
        resource_spans = [_field(b"\x0a", _attributes(b"\x0a", resource.attributes))]
        for scope, encoded in scopes.items():
            scope_spans = _scope(scope) + b"".join(encoded)
            if scope is not None:
                scope_spans += _text(b"\x1a", scope.schema_url or "")
            resource_spans.append(_field(b"\x12", scope_spans))
        resource_spans.append(_text(b"\x1a", resource.schema_url))
        out.append(_field(b"\x0a", b"".join(resource_spans)))
    return b"".join(out)
