"""One write per response: the coalescing transport, and log lines batched per loop iteration."""

import asyncio
import io
import logging
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import orjson
import pytest
from svc_common.log_lines import Entry, JsonFormatter, LineFormatter, TextFormatter
from svc_common.logging import LoopBatchedHandler, _ContextFilter, request_id_var
from svc_common.serving.transport import CoalescingTransport


class RecordingTransport:
    """Stands in for uvloop's transport: records each write and close."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> Any:
        return f"extra:{name}"


async def test_writes_of_one_iteration_leave_as_one() -> None:
    raw = RecordingTransport()
    transport = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert raw.writes == [], "nothing is sent before the iteration ends"
    assert transport.get_write_buffer_size() == 40
    await asyncio.sleep(0)
    assert raw.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


async def test_close_sends_what_is_queued_first_and_the_rest_passes_through() -> None:
    raw = RecordingTransport()
    transport = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"last bytes")
    transport.close()
    assert raw.writes == [b"last bytes"]
    assert raw.closed
    await asyncio.sleep(0)
    assert raw.writes == [b"last bytes"], "not sent twice"
    assert transport.get_extra_info("peername") == "extra:peername"


async def test_access_lines_of_one_iteration_share_a_write() -> None:
    stream = io.StringIO()
    writes: list[str] = []
    stream.write = lambda text: writes.append(text) or len(text)  # type: ignore[method-assign]
    name = "test_common_transport.access"
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.handlers[:] = [LoopBatchedHandler(stream, batched=frozenset({name}))]
    logger.warning("one")
    logger.warning("two")
    assert writes == []
    await asyncio.sleep(0)
    assert writes == ["one\ntwo\n"]


async def test_any_other_line_is_written_at_once_after_the_access_lines_before_it() -> None:
    stream = io.StringIO()
    handler = LoopBatchedHandler(stream, batched=frozenset({"test_common_transport.hot"}))
    for name in ("test_common_transport.hot", "test_common_transport.lifecycle"):
        logging.getLogger(name).propagate = False
        logging.getLogger(name).handlers[:] = [handler]
    logging.getLogger("test_common_transport.hot").warning("GET /itens/1 200")
    logging.getLogger("test_common_transport.lifecycle").warning("Application shutdown complete")
    # No await: a process that dies right here has already written both, in order.
    assert stream.getvalue() == "GET /itens/1 200\nApplication shutdown complete\n"


def test_log_lines_outside_an_event_loop_are_written_at_once() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test_common_transport.direct")
    logger.propagate = False
    logger.handlers[:] = [LoopBatchedHandler(stream)]
    logger.warning("at start-up")
    assert stream.getvalue() == "at start-up\n"


TRACE_ID, SPAN_ID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01".encode()


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_a_direct_access_line_is_the_line_a_log_record_would_give(
    formatter: LineFormatter,
) -> None:
    stream = io.StringIO()
    handler = LoopBatchedHandler(stream, service="svc")
    handler.setFormatter(formatter)
    handler.addFilter(_ContextFilter("svc"))
    token = request_id_var.set("req-1")
    try:
        with mock.patch("svc_common.logging.time.time", return_value=1_790_000_000.25):
            handler.emit_access(
                logging.INFO, "GET /x 200 1.0ms", {"backend": "b1"}, trace=TRACEPARENT
            )
            record = logging.makeLogRecord(
                {"name": "access", "levelno": logging.INFO, "levelname": "INFO"}
            )
            record.msg, record.backend = "GET /x 200 1.0ms", "b1"
            record.trace_id, record.span_id = TRACE_ID, SPAN_ID
            record.created = 1_790_000_000.25
            handler.filter(record)
            handler.emit(record)
    finally:
        request_id_var.reset(token)
    direct, via_record = stream.getvalue().splitlines()
    assert direct == via_record
    assert "req-1" in direct
    assert "b1" in direct
    assert TRACE_ID in direct
    assert SPAN_ID in direct


async def test_with_a_flush_interval_access_lines_wait_for_it_and_leave_together() -> None:
    stream = io.StringIO()
    handler = LoopBatchedHandler(stream, flush_after=0.05)
    handler.setFormatter(TextFormatter())
    handler.emit_access(logging.INFO, "GET /a 200 1.0ms", {})
    await asyncio.sleep(0)
    handler.emit_access(logging.INFO, "GET /b 200 1.0ms", {})
    await asyncio.sleep(0.01)
    assert stream.getvalue() == "", "held until the interval ends"
    await asyncio.sleep(0.1)
    assert stream.getvalue().count("\n") == 2
    assert "GET /a" in stream.getvalue()
    assert "GET /b" in stream.getvalue()


@pytest.mark.parametrize(
    "created", [1_790_000_000.25, 1_790_000_000.9999996, 1_790_000_000.0004999, 1_790_000_061.617]
)
def test_json_timestamps_are_the_isoformat_of_the_moment_to_the_millisecond(
    created: float,
) -> None:
    formatter = JsonFormatter()
    formatter.line(Entry(created - 1, "INFO", "s", "-", "access", "warm the per-second part", {}))
    line = formatter.line(Entry(created, "INFO", "s", "-", "access", "GET /x 200 1.0ms", {}))
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert orjson.loads(line)["ts"] == expected


async def test_a_buffered_access_line_keeps_the_request_id_of_its_request() -> None:
    stream = io.StringIO()
    handler = LoopBatchedHandler(stream, service="svc")
    handler.setFormatter(JsonFormatter())
    token = request_id_var.set("req-9")
    handler.emit_access(logging.INFO, "GET /x 200 1.0ms", {})
    request_id_var.reset(token)
    assert stream.getvalue() == "", "formatted when the batch is written"
    await asyncio.sleep(0)
    assert orjson.loads(stream.getvalue())["request_id"] == "req-9"


def test_a_json_line_of_a_logged_exception_carries_its_traceback() -> None:
    stream = io.StringIO()
    handler = LoopBatchedHandler(stream, service="svc")
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test_common_transport.errors")
    logger.propagate = False
    logger.handlers[:] = [handler]
    try:
        raise ValueError("the cause")
    except ValueError:
        logger.exception("database error on POST /itens")
    line = orjson.loads(stream.getvalue())
    assert line["msg"] == "database error on POST /itens"
    assert "ValueError: the cause" in line["exc"]
