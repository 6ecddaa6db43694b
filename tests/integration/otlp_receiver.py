"""An OTLP/HTTP trace receiver: decodes each export with the official opentelemetry-proto
messages and keeps the spans, for tests to look their traces up."""

import html
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

# opentelemetry-proto's Span.SpanKind numbers, by name.
KINDS = {ProtoSpan.SPAN_KIND_SERVER: "server", ProtoSpan.SPAN_KIND_CLIENT: "client"}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived: who sent it, where it sits in its trace, what it says."""

    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    attributes: dict[str, Any]
    start_ns: int = 0
    end_ns: int = 0


def _value(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    return getattr(value, field) if field else None


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one ExportTraceServiceRequest (protobuf, as OTLP/HTTP sends it)."""
    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name")),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=KINDS.get(span.kind, "internal"),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                    )
                )
    return spans


def count(body: bytes) -> int:
    """How many spans one export holds (decoded, not kept)."""
    request = ExportTraceServiceRequest.FromString(body)
    return sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)


class OtlpReceiver:
    """POST /v1/traces on a loopback port of its own, in a thread. With keep=False it only
    counts the spans it decodes (a bench's receiver, which must not grow)."""

    def __init__(self, *, keep: bool = True) -> None:
        self.spans: list[ReceivedSpan] = []
        self.received = 0
        self.exports = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path != "/v1/traces" or "protobuf" not in self.headers["content-type"]:
                    self.send_error(404 if self.path != "/v1/traces" else 415)
                    return
                spans = decode(body) if keep else []
                received = len(spans) if keep else count(body)
                with receiver._lock:
                    receiver.spans += spans
                    receiver.received += received
                    receiver.exports += 1
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """OTEL_EXPORTER_OTLP_ENDPOINT for the services (the SDK appends /v1/traces)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans of one trace received so far."""
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def wait_for(
        self, trace_id: str, done: Callable[[list[ReceivedSpan]], bool], timeout: float = 20
    ) -> list[ReceivedSpan]:
        """The spans of a trace once done(spans) holds, or what came within the timeout (the
        SDK exports in batches, from a thread of each process)."""
        deadline = time.monotonic() + timeout
        spans = self.trace(trace_id)
        while not done(spans) and time.monotonic() < deadline:
            time.sleep(0.1)
            spans = self.trace(trace_id)
        return spans

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def waterfall_html(trace_id: str, spans: list[ReceivedSpan]) -> str:
    """One trace as a page: each span a bar on a shared time axis, children under parents."""
    children: dict[str, list[ReceivedSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_ns):
        children.setdefault(span.parent_id, []).append(span)
    ids = {span.span_id for span in spans}
    roots = [span for span in spans if span.parent_id not in ids]
    first = min(span.start_ns for span in spans)
    total = max(span.end_ns for span in spans) - first or 1
    rows: list[str] = []

    def walk(span: ReceivedSpan, depth: int) -> None:
        left = (span.start_ns - first) / total * 100
        width = max((span.end_ns - span.start_ns) / total * 100, 0.3)
        ms = (span.end_ns - span.start_ns) / 1e6
        label = html.escape(f"{span.service}: {span.name}")
        rows.append(
            f'<tr><td style="padding-left:{depth * 18}px">{label}</td>'
            f"<td>{span.kind}</td><td>{ms:.2f} ms</td>"
            f'<td class="axis"><div class="bar {span.kind}" '
            f'style="margin-left:{left:.2f}%;width:{width:.2f}%"></div></td></tr>'
        )
        for child in children.get(span.span_id, []):
            walk(child, depth + 1)

    for root in sorted(roots, key=lambda s: s.start_ns):
        walk(root, 0)
    return (
        "<!doctype html><meta charset=utf-8><title>trace</title><style>"
        "body{font:14px sans-serif;margin:24px}td{padding:3px 8px;white-space:nowrap}"
        ".axis{width:55%}.bar{height:12px;background:#4c78a8}.bar.client{background:#f58518}"
        "</style>"
        f"<h2>Trace {trace_id}</h2><p>{len(spans)} spans received over OTLP/HTTP</p>"
        "<table>" + "".join(rows) + "</table>"
    )
