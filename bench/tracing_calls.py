"""Instructions per call of each piece of a hop's trace work, counted under valgrind's callgrind
in one process: a figure this shared machine does not move, to judge a change to one piece
(bench.traces_instructions counts the live path; bench.tracing_hop times the pieces).

Each operation runs --count times in a process under callgrind, and again 0 times; the
difference over the count is what one call costs, setup and interpreter start-up left out.

    PYTHONPATH=. .venv/bin/python -m bench.tracing_calls [--count 5000] [--ops a,b]

Writes bench/results/tracing-calls.md.
"""

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from svc_common import request_headers, tracing, tracing_export
from svc_common.tracing_client import ClientTracerProvider

from bench import tracing_hop

RESULTS = Path(__file__).parent / "results" / "tracing-calls.md"
ROUTE = ("GET", "/itens/7", "/itens/{id}")
HEADERS = [(b"host", b"gateway:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]
BATCH = 512  # spans an export sends at most, by default (OTEL_BSP_MAX_EXPORT_BATCH_SIZE)
UNSAMPLED = (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
EXTRA = {"backend": "http://s1:8002", "tries": 1}
# callgrind's summary line on stderr.
_COLLECTED = re.compile(r"^==\d+== Collected : (\d+)$", re.M)


def operations() -> dict[str, tuple[str, Callable[[], object], int]]:
    """The operations: the sampling each runs under (traces on, spans kept in a processor's
    queue whose export never runs), the call, and how many items one call does."""
    relayed = [*HEADERS, UNSAMPLED]

    def sampled_hop() -> None:
        hop = tracing.start(*ROUTE, HEADERS)
        tracing.finish(hop, "GET", "/itens/{id}", 200, EXTRA)

    client: list[object] = []

    def client_span() -> None:
        if not client:  # below a sampled hop, made once traces are on (repeat())
            client.append(tracing.client_spans_under(tracing.start(*ROUTE, HEADERS)))
        tracing_hop.client_span(redis)

    redis = ClientTracerProvider().get_tracer("opentelemetry.instrumentation.redis")
    exporter = InMemorySpanExporter()
    tracing.enable(ParentBased(ALWAYS_ON), Resource.create(), SimpleSpanProcessor(exporter))
    for _ in range(BATCH):
        sampled_hop()
    spans = exporter.get_finished_spans()
    return {
        "header pass": ("off", lambda: request_headers.scan(relayed), 1),
        "root hop (not sampled)": ("off", lambda: tracing.start(*ROUTE, HEADERS), 1),
        "hop relaying an unsampled caller": ("off", lambda: tracing.start(*ROUTE, relayed), 1),
        "root hop (sampled)": ("on", lambda: tracing.start(*ROUTE, HEADERS), 1),
        "sampled hop (begun and reported)": ("on", sampled_hop, 1),
        "a client span (as the Redis instrumentation makes one)": ("on", client_span, 1),
        f"a span encoded (batches of {BATCH})": (
            "on",
            lambda: tracing_export.encode(spans),
            BATCH,
        ),
    }


def _enable(sampling: str) -> None:
    """Traces on, every trace sampled ("on") or none ("off")."""
    if not _PROCESSOR:
        never = 1 << 30  # the worker never wakes: the queue only grows, nothing is dropped
        _PROCESSOR.append(
            BatchSpanProcessor(
                InMemorySpanExporter(),
                max_queue_size=never,
                max_export_batch_size=never,
                schedule_delay_millis=never,
            )
        )
    sampler = ParentBased(ALWAYS_ON if sampling == "on" else ALWAYS_OFF)
    tracing.enable(sampler, Resource.create(), _PROCESSOR[0])


# The one processor of a process, made on first use.
_PROCESSOR: list[BatchSpanProcessor] = []


def repeat(name: str, count: int) -> None:
    """Do count items of one operation (the process callgrind counts)."""
    sampling, work, per_call = operations()[name]
    _enable(sampling)
    for _ in range(count // per_call):
        work()


def collected(stderr: str) -> int:
    """The instructions callgrind counted in a process, from its summary."""
    found = _COLLECTED.search(stderr)
    assert found is not None, f"no callgrind summary in: {stderr[-500:]}"
    return int(found.group(1))


def _count(name: str, count: int) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench.tracing_calls",
        "--op",
        name,
        "--count",
        str(count),
    ]
    # One hash seed: dict and set layouts, and so the work done, repeat from run to run.
    env = os.environ | {"PYTHONHASHSEED": "0"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return collected(done.stderr)


def main() -> None:
    """Count each operation, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--ops", default="")
    parser.add_argument("--op", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.op:
        repeat(args.op, args.count)
        return
    known = operations()
    names = args.ops.split(",") if args.ops else list(known)
    lines = [
        f"`python -m bench.tracing_calls --count {args.count}`",
        "",
        f"Instructions per item, each operation done for {args.count} items in a process under "
        "callgrind against the same process calling it 0 times.",
        "",
        "| operation | instructions an item |",
        "|---|---:|",
    ]
    for name in names:
        per_call = known[name][2]
        items = args.count // per_call * per_call
        per_item = (_count(name, args.count) - _count(name, 0)) / items
        print(f"{name}: {per_item:,.0f}", flush=True)
        lines.append(f"| {name} | {per_item:,.0f} |")
    if not args.ops:
        RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
