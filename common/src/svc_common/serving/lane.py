"""The lane: plain GETs a service answers below ASGI, and what a lane handler is.

A service whose lifespan yields `{LANE: handler}` gets each bodiless GET the handler accepts
straight from the HTTP parser (svc_common.serving.protocol), answered by `handler.start()` or
`handler.respond()` and written in one piece. Everything else takes the ASGI path. A handler
is a thin adapter: the policy it applies (admission, rate limits, forwarding, failures) is
the same code the service's ASGI middleware calls. Why: a forwarding hop through Starlette's
middleware and an HTTP client costs a few hundred microseconds of CPU, mostly in layers a
plain forward does not need (docs/adr/0001-a-lane-below-asgi.md).
"""

import asyncio
import contextvars
import logging
import urllib.parse
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any, Protocol

import httptools

from svc_common import request_headers, tracing
from svc_common.envelope import error_response
from svc_common.logging import request_id_var
from svc_common.middleware import request_id_or_new
from svc_common.tracing import Hop

log = logging.getLogger(__name__)

# The key of the lifespan state that holds a service's LaneHandler.
LANE = "fast_lane"
# Answers that carry no Content-Length of their own (RFC 9110 section 8.6).
_NO_CONTENT = frozenset({204, 304})
# Headers the lane writes itself.
_REPLACED = frozenset({b"content-length", b"x-request-id"})


def _status_line(code: int) -> bytes:
    try:
        phrase = HTTPStatus(code).phrase.encode()
    except ValueError:  # a code with no registered phrase (a relayed 520, say)
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (code, phrase)


# The status line of every status code, as uvicorn writes it.
STATUS_LINE = {code: _status_line(code) for code in range(100, 600)}


class LaneRequest:
    """What a handler sees of a GET: the parts of an ASGI scope it needs, nothing built."""

    __slots__ = (
        "client",
        "headers",
        "hop",
        "log_extra",
        "note",
        "path",
        "query",
        "raw_path",
        "request_id",
        "route",
        "scheme",
        "scope_extra",
        "trace_context",
    )

    def __init__(
        self,
        *,
        path: str,
        raw_path: bytes,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        client: tuple[str, int] | None,
        scheme: str = "http",
    ) -> None:
        self.path = path
        self.scheme = scheme
        self.raw_path = raw_path
        self.query = query
        self.headers = headers
        self.client = client
        self.request_id = ""
        # The metrics label, and what the handler learnt while accepting (e.g. the caller).
        self.route = "unmatched"
        self.note: object = None
        self.log_extra: dict[str, object] | None = None
        # Added to the ASGI scope when the request goes the ASGI way after all (TO_ASGI).
        self.scope_extra: dict[str, object] | None = None
        # The caller's traceparent and tracestate, as they came; and its server span, when
        # traces are on (svc_common.tracing).
        self.trace_context: tuple[bytes | None, bytes | None] = (None, None)
        self.hop: Hop | None = None

    @classmethod
    def parsed(
        cls,
        url: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        client: tuple[str, int] | None,
        scheme: str,
    ) -> "LaneRequest | None":
        """The request from its target and headers as the parser read them; None when it
        carries a body (the ASGI path reads bodies)."""
        body, sent_id, traceparent, tracestate = request_headers.scan(headers)
        if body:
            return None
        parts = httptools.parse_url(url)
        raw_path: bytes = parts.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        request = cls(
            path=path,
            raw_path=raw_path,
            query=parts.query or b"",
            headers=headers,
            client=client,
            scheme=scheme,
        )
        request.request_id = request_id_or_new(sent_id)
        request.trace_context = (traceparent, tracestate)
        return request

    @property
    def client_ip(self) -> str:
        """The peer's address as this server saw it."""
        return self.client[0] if self.client else "unknown"

    @property
    def target(self) -> bytes:
        """The request target to send upstream: path and query as the client encoded them."""
        return self.raw_path + b"?" + self.query if self.query else self.raw_path

    def reply_headers(self, lane: "LaneHandler") -> tuple[tuple[bytes, bytes], ...]:
        """The lane's headers for every answer, plus the traceparent of a trace begun here."""
        if self.hop is None or not self.hop.answer:
            return lane.extra_headers
        return lane.extra_headers + self.hop.answer

    def header(self, name: bytes) -> bytes | None:
        """The first value of a (lower-case) header."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


class Answer(Protocol):
    """A response as the lane writes it; Starlette's Response has the same three attributes."""

    @property
    def status_code(self) -> int:
        """The status."""

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """Lower-case names, as Starlette keeps them."""

    @property
    def body(self) -> bytes | memoryview:
        """The whole body."""


class RawAnswer:
    """An answer built from parts (a relayed upstream response); no content-length needed."""

    __slots__ = ("body", "raw_headers", "status_code")

    def __init__(self, status_code: int, raw_headers: list[tuple[bytes, bytes]], body: bytes):
        self.status_code = status_code
        self.raw_headers = raw_headers
        self.body = body


class _ToAsgi:
    """See TO_ASGI."""

    status_code = 0
    raw_headers: list[tuple[bytes, bytes]] = []  # noqa: RUF012 - never changed
    body = b""


# Delivered instead of an answer: the ASGI app answers the request after all, in its turn
# (an upstream answer too big for the lane to hold, which the ASGI path streams).
TO_ASGI: Answer = _ToAsgi()


class LaneHandler:
    """What a service puts in its lifespan state under LANE."""

    # As RequestContextMiddleware's: ACCESS_LOG, and headers every answer carries.
    access_log = True
    extra_headers: tuple[tuple[bytes, bytes], ...] = ()

    def accepts(self, request: LaneRequest) -> bool:
        """Whether this GET is answered by respond(); called before any await."""
        raise NotImplementedError

    def start(self, request: LaneRequest, deliver: "Deliver") -> bool:
        """Begin answering with no task of its own, when beginning needs no await (a proxy
        sends the request on a ready connection): deliver(answer) follows once, now or from a
        later callback. False: respond() answers instead, in a task.

        A task costs an extra turn of the event loop before the request goes out and another
        before its answer does; on a forwarding hop that is most of the latency it adds."""
        return False

    async def respond(self, request: LaneRequest) -> Answer:
        """The whole answer (its body included)."""
        raise NotImplementedError


# How an answer reaches the connection: called once per request.
Deliver = Callable[[Answer], None]
# Tasks answer_later started, held until they end (the loop keeps only weak references).
_later: set["asyncio.Task[None]"] = set()


def answer_later(
    request: LaneRequest,
    answer: Coroutine[Any, Any, Answer],
    deliver: Deliver,
    *,
    tasks: set["asyncio.Task[None]"] = _later,
) -> None:
    """Await answer in a task that logs with the request's id, then deliver(it), or a 500."""
    context = contextvars.copy_context()
    context.run(request_id_var.set, request.request_id)
    if request.hop is not None:
        # Its database and Redis calls are children of the request's span, its lines carry it.
        context.run(tracing.attach, request.hop)
    loop = asyncio.get_running_loop()
    task = loop.create_task(_deliver(request, answer, deliver), context=context)
    task.add_done_callback(tasks.discard)
    tasks.add(task)


async def _deliver(
    request: LaneRequest, answer: Coroutine[Any, Any, Answer], deliver: Deliver
) -> None:
    try:
        result = await answer
    except Exception:
        log.exception("unhandled error on GET %s", request.path)
        result = error_response(500, "Internal server error")
    deliver(result)


def encode(
    answer: Answer,
    *,
    request_id: str,
    default_headers: list[tuple[bytes, bytes]],
    extra_headers: tuple[tuple[bytes, bytes], ...] = (),
    keep_alive: bool = True,
) -> bytes:
    """The answer on the wire: uvicorn's status line and Date, our request id, a length."""
    out: list[bytes | memoryview] = [STATUS_LINE[answer.status_code]]
    for name, value in default_headers:
        out += (name, b": ", value, b"\r\n")
    for name, value in answer.raw_headers:
        if name not in _REPLACED:
            out += (name, b": ", value, b"\r\n")
    out += (b"x-request-id: ", request_id.encode(), b"\r\n")
    for name, value in extra_headers:
        out += (name, b": ", value, b"\r\n")
    body = answer.body
    if answer.status_code >= 200 and answer.status_code not in _NO_CONTENT:
        out += (b"content-length: ", str(len(body)).encode(), b"\r\n")
    if not keep_alive:
        out.append(b"connection: close\r\n")
    out += (b"\r\n", body)
    return b"".join(out)
