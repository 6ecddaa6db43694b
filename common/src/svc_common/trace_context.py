"""W3C Trace Context (https://www.w3.org/TR/trace-context/): a caller's traceparent and
tracestate as a hop reads them, and the ids a traceparent names."""

import re

# What a hop writes for the next one (and the client); an upstream's are not relayed down.
TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})
# version-trace id-parent id-flags, lower-case hex; version ff and all-zero ids are invalid.
_TRACEPARENT = re.compile(
    rb"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(-.*)?", re.DOTALL
)
# Where a (valid) traceparent names its trace and span: a log line shows them as they are.
TRACE_ID = slice(3, 35)
SPAN_ID = slice(36, 52)
# Each byte's class: a lower-case hex digit, a dash, anything else. One translate() gives the
# shape of a traceparent, which a version 00 one (all of them, in practice) must have; that
# and two look-ups at the ids cost half of what the pattern does.
_CLASSES = bytes(
    ord("x") if byte in b"0123456789abcdef" else ord("-") if byte == ord("-") else ord("?")
    for byte in range(256)
)
_SHAPE = b"xx-" + b"x" * 32 + b"-" + b"x" * 16 + b"-xx"
_ZERO_TRACE, _ZERO_SPAN = b"0" * 32, b"0" * 16
# The flags' last hex digit when their sampled bit (0x01) is set.
_SAMPLED_DIGITS = frozenset(b"13579bdf")


def caller(
    traceparent: bytes | None, tracestate: bytes | None
) -> tuple[bytes, bytes | None, bool] | None:
    """The caller's traceparent and tracestate (request_headers.scan finds them), and whether
    its flags say the caller records the trace; None when it sent no valid traceparent."""
    if traceparent is None:
        return None
    if traceparent.translate(_CLASSES) == _SHAPE:
        if (
            traceparent[TRACE_ID] == _ZERO_TRACE
            or traceparent[SPAN_ID] == _ZERO_SPAN
            or traceparent[:2] == b"ff"
        ):
            return None
    else:  # a later version may add fields after the flags (version 00 adds none)
        match = _TRACEPARENT.fullmatch(traceparent)
        if match is None or traceparent.startswith(b"00"):
            return None
    return traceparent, tracestate, traceparent[54] in _SAMPLED_DIGITS


def numbers(traceparent: bytes) -> tuple[int, int]:
    """Trace id and parent span id of a valid traceparent, as numbers."""
    return int(traceparent[TRACE_ID], 16), int(traceparent[SPAN_ID], 16)


def log_fields(traceparent: bytes) -> dict[str, str]:
    """trace_id and span_id, as a log line names the trace and span of a (valid) traceparent."""
    return {"trace_id": traceparent[TRACE_ID].decode(), "span_id": traceparent[SPAN_ID].decode()}
