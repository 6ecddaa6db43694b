"""W3C Trace Context (https://www.w3.org/TR/trace-context/): a caller's traceparent and
tracestate as a hop reads them, and the ids a traceparent names."""

import re

# What a hop writes for the next one (and the client); an upstream's are not relayed down.
TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})
# version-trace id-parent id-flags, lower-case hex.
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZEROS = frozenset({b"0" * 32, b"0" * 16})


def caller(
    headers: list[tuple[bytes, bytes]],
) -> tuple[bytes, tuple[bytes, ...], bytes | None] | None:
    """The caller's traceparent, its parts (version, trace id, parent id, flags, the rest) and
    its tracestate; None when it sent no valid traceparent."""
    parent = state = None
    for name, value in headers:
        if name == b"traceparent":
            parent = value
        elif name == b"tracestate":
            state = value if state is None else state + b"," + value
    match = _TRACEPARENT.fullmatch(parent) if parent is not None else None
    if match is None:
        return None
    parts = match.groups()
    version, trace_id, span_id, _, rest = parts
    # ff is forbidden; version 00 has nothing after the flags (later versions may).
    if version == b"ff" or (version == b"00" and rest) or trace_id in _ZEROS or span_id in _ZEROS:
        return None
    return match.group(), parts, state


def log_fields(traceparent: bytes) -> dict[str, str]:
    """trace_id and span_id, as a log line names the trace and span of a (valid) traceparent."""
    return {"trace_id": traceparent[3:35].decode(), "span_id": traceparent[36:52].decode()}
