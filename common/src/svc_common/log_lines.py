"""What a log line shows and how it is written: one JSON object (for log shippers) or one
text line (for terminals), built from its parts so access lines can skip the LogRecord."""

import logging
import time
from typing import Any, NamedTuple

import orjson

from svc_common.trace_context import SPAN_ID, TRACE_ID

# Attributes every LogRecord has; anything else was passed with extra= and is logged as a field.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
    "service",
    "request_id",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS}


class Entry(NamedTuple):
    """What a line shows."""

    created: float
    level: str
    service: str
    request_id: str
    logger: str
    message: str
    extras: dict[str, Any]
    # An access line's traceparent, when traces are on: the line names its trace and span.
    trace: bytes | None = None


class LineFormatter(logging.Formatter):
    """Formats a line from its parts, so access lines can skip building a LogRecord."""

    utc = False  # else local time, as logging.Formatter shows it
    _second = -1
    _stamp = ""

    def line(self, entry: "Entry") -> str:
        """One line, without a trailing newline."""
        raise NotImplementedError

    def timestamp(self, created: float, pattern: str, millis: str) -> str:
        """created as `pattern` (strftime, UTC or local time) plus its milliseconds as
        `millis` formats them; the part down to the second is built once a second, not a line."""
        second, micros = divmod(round(created * 1_000_000), 1_000_000)
        if second != self._second:
            parts = time.gmtime(second) if self.utc else self.converter(second)
            self._stamp = time.strftime(pattern, parts)
            self._second = second
        return self._stamp + millis % (micros // 1000)

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line (plus its traceback, if any)."""
        return self.line(
            Entry(
                record.created,
                record.levelname,
                getattr(record, "service", "-"),
                getattr(record, "request_id", "-"),
                record.name,
                record.getMessage(),
                _extras(record),
            )
        )


class JsonFormatter(LineFormatter):
    """One JSON object per line, for log shippers."""

    utc = True  # the `ts` field

    def line(self, entry: "Entry") -> str:
        """The JSON object."""
        fields: dict[str, Any] = {
            "ts": self.timestamp(entry.created, "%Y-%m-%dT%H:%M:%S", ".%03d+00:00"),
            "level": entry.level,
            "service": entry.service,
            "request_id": entry.request_id,
            "logger": entry.logger,
            "msg": entry.message,
            **entry.extras,
        }
        trace = entry.trace
        if trace is not None:  # written in place: the one line every request logs
            fields["trace_id"] = trace[TRACE_ID].decode()
            fields["span_id"] = trace[SPAN_ID].decode()
        return orjson.dumps(fields, default=str).decode()

    def format(self, record: logging.LogRecord) -> str:
        """The record, its traceback as the `exc` field."""
        if record.exc_info:
            record.exc = self.formatException(record.exc_info)
        return super().format(record)


class TextFormatter(LineFormatter):
    """Human-readable lines with key=value extras, for terminals."""

    def line(self, entry: "Entry") -> str:
        """`time level service [request id] message key=value ...`."""
        stamp = self.timestamp(entry.created, self.default_time_format, ",%03d")
        text = f"{stamp} {entry.level:<5} {entry.service} [{entry.request_id}]"
        text += " " + entry.message
        if entry.extras:
            text += " " + " ".join(f"{k}={v}" for k, v in entry.extras.items())
        trace = entry.trace
        if trace is not None:
            text += f" trace_id={trace[TRACE_ID].decode()} span_id={trace[SPAN_ID].decode()}"
        return text

    def format(self, record: logging.LogRecord) -> str:
        """The line, then the traceback and stack (as logging.Formatter adds them)."""
        text = super().format(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text
