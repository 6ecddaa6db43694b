"""The fast lane: plain GETs a service forwards are answered below ASGI.

A forwarding hop through uvicorn, Starlette's middleware stack and an HTTP client costs a
couple of hundred microseconds of CPU per request, most of it in layers a pure forward does
not need. A service whose lifespan yields `{LANE: handler}` gets, for each bodiless GET its
handler accepts, a task that calls `handler.respond()` straight from uvicorn's parser
callbacks and writes the answer in one piece. Everything else (other methods, bodies,
upgrades, requests the handler declines) takes the ordinary ASGI path, so /docs, logins and
writes behave exactly as before. The lane keeps what every request gets on the ASGI path:
the request id (echoed, and in every log line), the metrics, and the access line.
"""

import asyncio
import contextvars
import logging
import time
import urllib.parse
from typing import Protocol

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

from svc_common.envelope import error_response
from svc_common.logging import log_access, request_id_var
from svc_common.metrics import observe
from svc_common.middleware import QUIET_PATHS, request_id_from
from svc_common.transport import CoalescingHttpToolsProtocol

log = logging.getLogger(__name__)

# The key of the lifespan state that holds a service's FastLaneHandler.
LANE = "fast_lane"
_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})
# Answers that carry no Content-Length of their own (RFC 9110 section 8.6).
_NO_CONTENT = frozenset({204, 304})
# Headers the lane writes itself.
_REPLACED = frozenset({b"content-length", b"x-request-id"})


class FastRequest:
    """What a handler sees of a GET: the parts of an ASGI scope it needs, nothing built."""

    __slots__ = (
        "client",
        "headers",
        "log_extra",
        "note",
        "path",
        "query",
        "raw_path",
        "request_id",
        "route",
        "scheme",
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

    @property
    def target(self) -> bytes:
        """The request target to send upstream: path and query as the client encoded them."""
        return self.raw_path + b"?" + self.query if self.query else self.raw_path

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


class FastLaneHandler:
    """What a service puts in its lifespan state under LANE."""

    # As RequestContextMiddleware's: ACCESS_LOG, and headers every answer carries.
    access_log = True
    extra_headers: tuple[tuple[bytes, bytes], ...] = ()

    def accepts(self, request: FastRequest) -> bool:
        """Whether this GET is answered by respond(); called before any await."""
        raise NotImplementedError

    async def respond(self, request: FastRequest) -> Answer:
        """The whole answer (its body included)."""
        raise NotImplementedError


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


class FastLaneProtocol(CoalescingHttpToolsProtocol):
    """uvicorn's httptools protocol that hands accepted GETs to the service's lane."""

    def on_headers_complete(self) -> None:
        """Start the lane's task for a GET it accepts; anything else goes the ASGI way."""
        lane: FastLaneHandler | None = self.app_state.get(LANE)
        request = None if lane is None else self._lane_request()
        if lane is None or request is None or not lane.accepts(request):
            super().on_headers_complete()
            return
        self.cycle = cycle = RequestResponseCycle(
            scope=self.scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=False,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=self.parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        request.request_id = request_id_from(request.headers)
        context = contextvars.copy_context()
        context.run(request_id_var.set, request.request_id)
        task = self.loop.create_task(self._answer(cycle, lane, request), context=context)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _lane_request(self) -> FastRequest | None:
        """The request, if it may take the lane: a lone bodiless HTTP/1.1 GET."""
        parser = self.parser
        if (
            parser.get_method() != b"GET"
            or parser.get_http_version() != "1.1"
            or parser.should_upgrade()
            or self.expect_100_continue
            or (self.cycle is not None and not self.cycle.response_complete)  # pipelined
            or self.limit_concurrency is not None
        ):
            return None
        headers = self.headers
        if any(name in _BODY_HEADERS for name, _ in headers):
            return None
        url = httptools.parse_url(self.url)
        raw_path: bytes = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        return FastRequest(
            path=path,
            raw_path=raw_path,
            query=url.query or b"",
            headers=headers,
            client=self.client,
            scheme=self.scheme or "http",
        )

    async def _answer(
        self, cycle: RequestResponseCycle, lane: FastLaneHandler, request: FastRequest
    ) -> None:
        start = time.perf_counter()
        try:
            answer = await lane.respond(request)
        except Exception:
            log.exception("unhandled error on GET %s", request.path)
            answer = error_response(500, "Internal server error")
        if not cycle.disconnected and not self.transport.is_closing():
            self.transport.write(
                encode(
                    answer,
                    request_id=request.request_id,
                    default_headers=self.server_state.default_headers,
                    extra_headers=lane.extra_headers,
                    keep_alive=cycle.keep_alive,  # uvicorn clears it on shutdown
                )
            )
        cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()
        elapsed = time.perf_counter() - start
        status = answer.status_code
        observe("GET", request.route, status, elapsed)
        if not lane.access_log:
            return
        log_access(
            logging.DEBUG if request.path in QUIET_PATHS else logging.INFO,
            f"GET {request.path} {status} {elapsed * 1000:.1f}ms",
            request.log_extra,
        )
