"""Structured logging: every line carries the service name and the request id."""

import asyncio
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any, cast

from svc_common import trace_context, tracing
from svc_common.log_lines import Entry, JsonFormatter, LineFormatter, TextFormatter

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
# Loggers whose lines are batched per event-loop iteration: the one line every request logs.
ACCESS_LOGGER = "access"
BATCHED_LOGGERS = frozenset({ACCESS_LOGGER})
_access = logging.getLogger(ACCESS_LOGGER)
# Access lines wait this long, or for this many lines, and leave in one write (as nginx's
# `access_log ... buffer= flush=`): a kill -9 loses at most that much of them.
ACCESS_FLUSH_SECONDS = 0.1
MAX_BUFFERED_LINES = 256


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = request_id_var.get()
        if tracing.ENABLED:
            record.__dict__.update(tracing.log_ids())
        return True


class LoopBatchedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Access lines are held for flush_after seconds (0: to the end of this loop iteration)
    and leave together in one write.

    An access line per request would otherwise cost a write system call per request on the
    hot path. Any other line (start-up, warnings, shutdown) is written at once, after the
    access lines before it: uvicorn ends a process killed by SIGTERM by raising the signal
    again, so nothing may wait for a later iteration that never comes.
    """

    def __init__(
        self,
        stream: Any = None,
        *,
        batched: frozenset[str] = BATCHED_LOGGERS,
        service: str = "-",
        flush_after: float = 0.0,
    ) -> None:
        super().__init__(stream)
        self.service = service
        self.flush_after = flush_after
        self.batched = batched
        self._lines: list[str | Entry] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        """Format now (the record's context is current now); write now, or after this iteration."""
        try:
            self._add(self.format(record), batched=record.name in self.batched)
        except Exception:
            self.handleError(record)

    def emit_access(
        self,
        level: int,
        message: str,
        extras: dict[str, Any],
        request_id: str | None = None,
        trace: bytes | None = None,
    ) -> None:
        """An access line from its parts: what emit() writes for it, without a LogRecord.

        Only the parts are kept here; the lines are formatted together when they are written,
        one tight loop instead of formatting work scattered through every request."""
        assert isinstance(self.formatter, LineFormatter), "access lines need a LineFormatter"
        self._add(
            Entry(
                time.time(),
                logging.getLevelName(level),
                self.service,
                request_id or request_id_var.get(),
                ACCESS_LOGGER,
                message,
                extras,
                trace,
            ),
            batched=True,
        )

    def _add(self, line: "str | Entry", *, batched: bool) -> None:
        lines = self._lines
        lines.append(line)
        if batched and len(lines) < MAX_BUFFERED_LINES:
            if self._scheduled:
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop in this thread: write at once
                loop = None
            if loop is not None:
                self._scheduled = True
                if self.flush_after:
                    loop.call_later(self.flush_after, self._write_locked)
                else:
                    loop.call_soon(self._write_locked)
                return
        self._write_out()

    def _write_locked(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._scheduled = False
            self._write_out()

    def _write_out(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        formatter = cast(LineFormatter, self.formatter)  # emit_access checked it
        end = self.terminator
        self.stream.write(
            "".join(
                line + end if isinstance(line, str) else formatter.line(line) + end
                for line in lines
            )
        )
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
    handler = LoopBatchedHandler(sys.stderr, service=service, flush_after=ACCESS_FLUSH_SECONDS)
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


def log_access(
    level: int,
    message: str,
    extras: dict[str, Any] | None = None,
    request_id: str | None = None,
    trace: bytes | None = None,
) -> None:
    """The access line of one request (of request_id, else of the current context; naming
    the trace and span of its traceparent, when traces are on).

    When our handler is the only one (as configure_logging leaves it), the line goes straight
    to it: building a LogRecord and running it through the logging machinery cost more than
    the rest of a forwarded request's Python work. Anything else (a test's caplog, a handler
    someone added) gets an ordinary record.
    """
    if not _access.isEnabledFor(level):
        return
    handlers = logging.root.handlers
    if (
        len(handlers) == 1
        and isinstance(handlers[0], LoopBatchedHandler)
        and not _access.handlers
        and _access.propagate
        and not _access.filters
    ):
        handlers[0].emit_access(level, message, extras or {}, request_id, trace)
        return
    if trace is not None:
        extras = {**(extras or {}), **trace_context.log_fields(trace)}
    if request_id is None:
        _access.log(level, "%s", message, extra=extras)
    else:
        token = request_id_var.set(request_id)
        try:
            _access.log(level, "%s", message, extra=extras)
        finally:
            request_id_var.reset(token)
