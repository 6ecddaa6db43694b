"""Structured logging: every line carries the service name and the request id."""

import asyncio
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
# Loggers whose lines are batched per event-loop iteration: the one line every request logs.
BATCHED_LOGGERS = frozenset({"access"})

# Attributes every LogRecord has; anything else was passed with extra= and is logged as a field.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
    "service",
    "request_id",
}


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = request_id_var.get()
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": getattr(record, "service", "-"),
            "request_id": getattr(record, "request_id", "-"),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines with key=value extras, for terminals."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(service)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


class LoopBatchedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Access lines logged during one event-loop iteration leave in one write, after it.

    An access line per request would otherwise cost a write system call per request on the
    hot path. Any other line (start-up, warnings, shutdown) is written at once, after the
    access lines before it: uvicorn ends a process killed by SIGTERM by raising the signal
    again, so nothing may wait for a later iteration that never comes.
    """

    def __init__(self, stream: Any = None, *, batched: frozenset[str] = BATCHED_LOGGERS) -> None:
        super().__init__(stream)
        self.batched = batched
        self._lines: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        """Format now (the record's context is current now); write now, or after this iteration."""
        try:
            self._lines.append(self.format(record) + self.terminator)
            if record.name in self.batched:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # no loop in this thread: write at once
                    loop = None
                if loop is not None:
                    if not self._scheduled:
                        self._scheduled = True
                        loop.call_soon(self._write_locked)
                    return
            self._write_out()
        except Exception:
            self.handleError(record)

    def _write_locked(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._scheduled = False
            self._write_out()

    def _write_out(self) -> None:
        if self._lines:
            text, self._lines = "".join(self._lines), []
            self.stream.write(text)
            self.stream.flush()

    def flush(self) -> None:
        """Write what is buffered (logging.shutdown calls this at exit)."""
        with self.lock:  # type: ignore[union-attr]
            self._write_out()
            super().flush()


def configure_logging(service: str, *, level: str = "INFO", fmt: str = "text") -> None:
    """Send every logger (uvicorn's included) through one handler with the request id."""
    # The logging HOWTO's optimisations: no line shows the caller's frame, thread or process,
    # so no record looks them up (finding the caller walks the stack on every line).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LoopBatchedHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # Our middleware logs one access line with the request id; uvicorn's would double it.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every request at INFO; the monitor's polls would drown everything else.
    logging.getLogger("httpx").setLevel(logging.WARNING)
