"""What a hop's trace work costs in one process, beside what the SDK's own way costs.

    PYTHONPATH=. .venv/bin/python -m bench.tracing_hop [--rounds 3] [--count 20000]

Per hop of a request: start() (parse the caller's traceparent, decide, ids), attach and
detach, the headers for the next hop, the log ids and finish(); for a sampled hop, also the
span handed to the processor. Beside them: the same span made by the SDK's tracer, a client
span (as the Redis instrumentation makes one) through tracing_client and the SDK's, and a batch
encoded by tracing_export against the OTLP exporter's encoder. Best of the rounds, in
µs per operation, and the ratios. The running system's figures are case g of bench.run.
"""

import argparse
import time
from collections.abc import Callable, Sequence

from opentelemetry import context as otel_context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Tracer
from svc_common import tracing, tracing_export
from svc_common.tracing_client import ClientTracerProvider

HEADERS = [(b"host", b"gateway:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]
UNSAMPLED = [*HEADERS, (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")]
ROUTE = ("GET", "/itens/7", "/itens/{id}")


def _best(rounds: int, count: int, work: Callable[[], object]) -> float:
    """µs per call, best of the rounds."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            work()
        times.append((time.perf_counter() - started) / count * 1e6)
    return min(times)


def _hop(headers: list[tuple[bytes, bytes]]) -> None:
    hop = tracing.start(*ROUTE, headers)
    tracing.detach(tracing.attach(hop))
    tracing.headers(hop)
    tracing.log_ids(hop)
    tracing.finish(hop, "GET", "/itens/{id}", 200, {"backend": "http://s1:8002", "tries": 1})


def _enable(ratio: float) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    tracing.enable(provider.sampler, provider.resource, processor)
    return provider, exporter


def _sdk_span(provider: TracerProvider) -> None:
    span = provider.get_tracer("svc_common").start_span(
        "GET /itens/{id}", kind=SpanKind.SERVER, attributes={"url.path": "/itens/7"}
    )
    span.set_attributes({"http.route": "/itens/{id}", "http.response.status_code": 200})
    span.end()


def client_span(tracer: Tracer) -> None:
    """A client span as the Redis instrumentation makes one for a pipeline."""
    # What the Redis instrumentation does with a pipeline's span, below a sampled hop.
    with tracer.start_as_current_span("EVALSHA", kind=SpanKind.CLIENT) as span:
        span.set_attribute("db.statement", "EVALSHA ? ? ?")
        span.set_attribute("db.redis.pipeline_length", 1)
        span.set_attributes({"db.system": "redis", "net.peer.name": "127.0.0.1"})


def _encode(spans: Sequence[ReadableSpan], encode: Callable[..., object]) -> Callable[[], None]:
    def batch() -> None:
        encoded = encode(spans)
        if not isinstance(encoded, bytes):  # the exporter's encoder returns the message
            encoded.SerializeToString()  # type: ignore[attr-defined]

    return batch


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()
    best = lambda work: _best(args.rounds, args.count, work)  # noqa: E731
    _enable(0.0)
    rows = {
        "hop below an unsampled caller": best(lambda: _hop(UNSAMPLED)),
        "root hop, not sampled": best(lambda: _hop(HEADERS)),
    }
    provider, exporter = _enable(1.0)
    rows["root hop, sampled (span to the processor)"] = best(lambda: _hop(HEADERS))
    exporter.clear()
    rows["the same span through the SDK's tracer"] = best(lambda: _sdk_span(provider))
    hop = tracing.start(*ROUTE, HEADERS)
    token = tracing.client_spans_under(hop)
    ours = ClientTracerProvider().get_tracer("opentelemetry.instrumentation.redis")
    rows["a client span (tracing_client)"] = best(lambda: client_span(ours))
    theirs = provider.get_tracer("opentelemetry.instrumentation.redis")
    rows["the same client span through the SDK's tracer"] = best(lambda: client_span(theirs))
    otel_context.detach(token)  # type: ignore[arg-type]
    spans = exporter.get_finished_spans()[:512]
    per_span = args.count // len(spans) or 1
    batch = lambda encode: _best(args.rounds, per_span, _encode(spans, encode)) / len(spans)  # noqa: E731
    rows["a span encoded (tracing_export)"] = batch(tracing_export.encode)
    rows["a span encoded (OTLP exporter's encoder)"] = batch(encode_spans)
    print(f"best of {args.rounds} x {args.count}, µs per operation")
    for name, value in rows.items():
        print(f"  {name:44s} {value:6.2f}")
    sampled, sdk = (
        rows["root hop, sampled (span to the processor)"],
        rows["the same span through the SDK's tracer"],
    )
    ours, theirs = (
        rows["a span encoded (tracing_export)"],
        rows["a span encoded (OTLP exporter's encoder)"],
    )
    print(f"  sampled hop / SDK span alone: {sampled / sdk:.2f}")
    client, sdk_client = (
        rows["a client span (tracing_client)"],
        rows["the same client span through the SDK's tracer"],
    )
    print(f"  client span, ours / SDK's: {client / sdk_client:.2f}")
    print(f"  encoding, ours / exporter's: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
