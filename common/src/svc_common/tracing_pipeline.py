"""Where sampled spans go once traces are on: the SDK provider's sampler, resource and batch
processor, as svc_common.tracing (the hops' spans) and tracing_client (the client
instrumentations' spans) both use them. Ids are drawn here, samplers that decide by trace id
alone are recognised from their description, and a finished span is handed to the processor
as the SDK's ReadableSpan (docs/adr/0011-one-span-policy-for-both-paths.md).
"""

import random
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:  # the SDK is imported only when traces are on
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

# How the SDK describes its samplers (Sampler.get_description).
_ROOT_SAMPLER = re.compile(r"ParentBased\{root:(\w+(?:\{[^{}]*\})?),")
_RATIO_SAMPLER = re.compile(r"TraceIdRatioBased\{([0-9.e+-]+)\}")
# Trace and span ids need to be unique, not secret (the SDK's generator uses random too).
ids = random.Random(secrets.randbits(64))  # noqa: S311
SAMPLED = TraceFlags(TraceFlags.SAMPLED)
NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
LOW_64 = (1 << 64) - 1  # the part of a trace id TraceIdRatioBased compares
# The status most spans end with, one object: the encoder knows it by identity.
UNSET = Status(StatusCode.UNSET)


class Pipeline(NamedTuple):
    """The provider's sampler, resource and processor, and what its sampler's description
    lets a hop decide without calling it."""

    sampler: "Sampler"
    # A parentbased sampler that keeps exactly a remote caller's decision.
    follows_parent: bool
    # Whether a child of a sampled span of this process is sampled without asking the sampler.
    follows_local_parent: bool
    # Where the sampler's decision is `trace id's low 64 bits < bound` (always_on, always_off,
    # traceidratio: for a new trace, and below a caller too unless parent-based), the bound.
    bound: int | None
    resource: "Resource"
    scope: "InstrumentationScope"
    processor: "SpanProcessor"
    span: "type[ReadableSpan]"


current: Pipeline | None = None


def build(sampler: "Sampler", resource: "Resource", processor: "SpanProcessor") -> Pipeline:
    """The pipeline of a provider's parts (tracing.enable makes it current)."""
    from opentelemetry.sdk.trace import ReadableSpan  # noqa: PLC0415
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope  # noqa: PLC0415

    description = sampler.get_description()
    parent_based = description.startswith("ParentBased{")
    return Pipeline(
        sampler,
        follows_parent=parent_based
        and "remoteParentSampled:AlwaysOnSampler" in description
        and "remoteParentNotSampled:AlwaysOffSampler" in description,
        follows_local_parent=parent_based and "localParentSampled:AlwaysOnSampler" in description,
        bound=_bound(description),
        resource=resource,
        scope=InstrumentationScope("svc_common"),
        processor=processor,
        span=ReadableSpan,
    )


def _bound(description: str) -> int | None:
    """The trace-id bound of the samplers that decide by trace id alone, from the description
    the SDK gives them; None for any other (its should_sample is called)."""
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased  # noqa: PLC0415

    root = _ROOT_SAMPLER.match(description)
    name = root.group(1) if root else description
    if root is None and description.startswith("ParentBased{"):
        return None
    if name == "AlwaysOnSampler":
        return TraceIdRatioBased.TRACE_ID_LIMIT + 1
    if name == "AlwaysOffSampler":
        return 0
    ratio = _RATIO_SAMPLER.fullmatch(name)
    return TraceIdRatioBased.get_bound_for_rate(float(ratio.group(1))) if ratio else None


def report(  # noqa: PLR0917 (a call per span: its callers pass the span's parts in order)
    name: str,
    context: SpanContext,
    parent: SpanContext | None,
    attributes: dict[str, AttributeValue],
    kind: SpanKind,
    status: Status,
    start_ns: int,
    end_ns: int,
    scope: "InstrumentationScope | None" = None,
    events: "Sequence[Event]" = (),
    links: Sequence[Link] = (),
) -> None:
    """Hand a finished, sampled span to the processor (hops' and client spans alike)."""
    pipeline = current
    assert pipeline is not None, "spans are reported only when traces are on"
    pipeline.processor.on_end(
        # Positionally, in the order of ReadableSpan's parameters: a span per sampled hop,
        # and keywords cost a third more (test_common_tracing compares the spans made).
        pipeline.span(
            name,
            context,
            parent,
            pipeline.resource,
            attributes,
            events,
            links,
            kind,
            None,  # instrumentation_info, deprecated for the scope
            status,
            start_ns,
            end_ns,
            scope or pipeline.scope,
        )
    )


def decide_child(  # noqa: PLR0917 (positional: a call per client span)
    context: object,
    parent: SpanContext,
    name: str,
    kind: SpanKind,
    attributes: Mapping[str, AttributeValue] | None,
    links: Sequence[Link] | None,
    /,
) -> SpanContext | tuple[SpanContext, dict[str, AttributeValue]]:
    """A new span's context below parent (a span of this process, or none), as the SDK's
    tracer decides it: with the attributes to record when sampled, alone when not."""
    pipeline = current
    assert pipeline is not None, "spans are started only when traces are on"
    valid = parent.is_valid
    if valid and pipeline.follows_local_parent and parent.trace_flags.sampled:
        own = SpanContext(
            parent.trace_id, ids.getrandbits(64) or 1, False, SAMPLED, parent.trace_state
        )
        return own, dict(attributes or {})
    trace_id = parent.trace_id if valid else ids.getrandbits(128) or 1
    span_id = ids.getrandbits(64) or 1
    decided = pipeline.sampler.should_sample(
        context,  # type: ignore[arg-type]
        trace_id,
        name,
        kind,
        attributes,
        links,
    )
    sampled = decided.decision.is_sampled()  # type: ignore[no-untyped-call]
    flags = SAMPLED if sampled else NOT_SAMPLED
    own = SpanContext(trace_id, span_id, False, flags, decided.trace_state)
    return (own, dict(decided.attributes or {})) if sampled else own
