"""The tracer the client instrumentations (Redis, SQLAlchemy) are given: their spans made the
way a hop's are (imported only when traces are on, as the SDK is).

The SDK's tracer builds a full Span for each client call (a lock, bounded attributes, event
and link lists, the processor's on_start), several times the cost of the hop's own span
(docs/tracing.md, "What it costs"), only to hand the processor a ReadableSpan when it ends.
This tracer keeps the SDK's decisions (the provider's sampler, its resource and processor:
svc_common.tracing_pipeline) and hands the processor the ReadableSpan directly, as
tracing.finish() does. Client spans are made only under a sampled hop
(tracing.client_spans_under keeps the instrumentations quiet otherwise). test_common_tracing
compares its spans with the SDK tracer's.
"""

import time
import traceback
from collections.abc import Mapping, Sequence
from types import TracebackType

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import Attributes, AttributeValue

from svc_common import tracing_pipeline


class ClientSpan(trace.Span):
    """A sampled client span, reported to the processor when it ends."""

    def __init__(
        self,
        name: str,
        context: SpanContext,
        *,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, AttributeValue],
        links: Sequence[Link],
        scope: InstrumentationScope,
        start_time: int | None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.links = list(links)
        self.events: list[Event] = []
        self.scope = scope
        self.status = tracing_pipeline.UNSET
        self.start_ns = start_time or time.time_ns()
        self.ended = False
        # What `with tracer.start_span(...)` does with an exception leaving the block.
        self.record_on_exit = record_exception
        self.status_on_exit = set_status_on_exception

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """End the span, the exception that left the block recorded first (the SDK's way)."""
        if exc_val is not None:
            self.failed(
                exc_val, record=self.record_on_exit, status=self.status_on_exit, escaped=True
            )
        self.end()

    def failed(
        self, error: BaseException, *, record: bool, status: bool, escaped: bool = False
    ) -> None:
        """What an exception leaving the span's block does to it: an `exception` event and an
        ERROR status, as each is asked for."""
        if not self.is_recording():
            return
        if record:
            self.record_exception(error, escaped=escaped)
        if status:
            self.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))

    def end(self, end_time: int | None = None) -> None:
        """Report the span (once)."""
        if self.ended:
            return
        self.ended = True
        tracing_pipeline.report(
            self.name,
            self.context,
            self.parent,
            self.attributes,
            self.kind,
            self.status,
            self.start_ns,
            end_time or time.time_ns(),
            self.scope,
            self.events,
            self.links,
        )

    def get_span_context(self) -> SpanContext:
        """Its trace and span ids."""
        return self.context

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Set several attributes."""
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Set one attribute while the span runs."""
        if not self.ended:
            self.attributes[key] = value

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        """An event at timestamp (now by default)."""
        if not self.ended:
            self.events.append(Event(name, attributes, timestamp or time.time_ns()))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        """A link to another span."""
        if not self.ended and context.is_valid:
            self.links.append(Link(context, attributes))

    def update_name(self, name: str) -> None:
        """Rename the span while it runs."""
        if not self.ended:
            self.name = name

    def is_recording(self) -> bool:
        """Whether it still takes attributes, events and a status."""
        return not self.ended

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Its status: OK wins over ERROR, which wins over UNSET (the SDK's rule)."""
        if self.ended or self.status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self.status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """The exception as an `exception` event, with the attributes the SDK gives it."""
        kind = type(exception)
        name = kind.__qualname__
        if kind.__module__ and kind.__module__ != "builtins":
            name = f"{kind.__module__}.{name}"
        event: dict[str, AttributeValue] = {
            "exception.type": name,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        self.add_event("exception", event | dict(attributes or {}), timestamp)


class ClientTracer(trace.Tracer):
    """Starts client spans below the current (sampled) hop."""

    def __init__(self, scope: InstrumentationScope) -> None:
        self.scope = scope

    def start_span(  # noqa: PLR0917 (the API's signature)
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        """A recording span when the sampler keeps it, else one that records nothing."""
        parent = trace.get_current_span(context).get_span_context()
        decided = tracing_pipeline.decide_child(context, parent, name, kind, attributes, links)
        if isinstance(decided, SpanContext):
            return trace.NonRecordingSpan(decided)
        own, kept = decided
        return ClientSpan(
            name,
            own,
            parent=parent if parent.is_valid else None,
            kind=kind,
            attributes=kept,
            links=links or (),
            scope=self.scope,
            start_time=start_time,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        )

    def start_as_current_span(  # type: ignore[override]  # noqa: PLR0917 (the API's signature)
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> "CurrentSpan":
        """start_span, made current for a `with` block (as the API's use_span makes it; the
        client instrumentations use no other form, such as a decorator)."""
        span = self.start_span(name, context, kind, attributes, links, start_time)
        return CurrentSpan(span, end_on_exit, record_exception, set_status_on_exception)


class CurrentSpan:
    """The block of start_as_current_span: the span current within it, what left it with an
    exception recorded, and the span ended after it. The API's use_span does the same through
    two generator context managers, a large share of a client span's cost."""

    __slots__ = ("end_on_exit", "record", "span", "status", "token")

    def __init__(self, span: trace.Span, end_on_exit: bool, record: bool, status: bool, /) -> None:
        self.span = span
        self.end_on_exit = end_on_exit
        self.record = record
        self.status = status
        self.token: object = None

    def __enter__(self) -> trace.Span:
        self.token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        otel_context.detach(self.token)  # type: ignore[arg-type]
        span = self.span
        # Only an Exception: GeneratorExit and the like are not errors (the API's rule).
        if isinstance(exc_val, Exception) and isinstance(span, ClientSpan):
            span.failed(exc_val, record=self.record, status=self.status)
        if self.end_on_exit:
            span.end()


class ClientTracerProvider(trace.TracerProvider):
    """What the client instrumentations are instrumented with (tracing_setup)."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace.Tracer:
        """A tracer whose spans carry the instrumentation's scope."""
        return ClientTracer(
            InstrumentationScope(
                instrumenting_module_name, instrumenting_library_version, schema_url, attributes
            )
        )
