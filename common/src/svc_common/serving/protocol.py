"""uvicorn's httptools protocol, with one write per response and the lane: the one module
that knows uvicorn's internals.

It subclasses HttpToolsProtocol and relies on the attributes and methods in UVICORN_INTERNALS
(a contract test checks each against the installed uvicorn, which common/pyproject.toml bounds
to the minor version the suite ran on). A GET the service's lane accepts is taken as soon as
its headers are parsed and answered below ASGI (svc_common.serving.lane), in its turn among
the connection's answers; anything else goes on to uvicorn and the ASGI app as always.
"""

import asyncio
import logging
import time
from collections import deque
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from svc_common import tracing
from svc_common.envelope import error_response
from svc_common.health import mark_draining
from svc_common.middleware import finished, request_id_from, trace_start
from svc_common.serving.lane import (
    LANE,
    TO_ASGI,
    Answer,
    LaneHandler,
    LaneRequest,
    answer_later,
    encode,
)
from svc_common.serving.stretch import Stretch
from svc_common.serving.transport import CoalescingTransport

log = logging.getLogger(__name__)

# What this module uses of HttpToolsProtocol beyond asyncio.Protocol: methods it overrides or
# calls, and attributes it reads or sets (checked by common/tests/test_common_uvicorn_contract.py).
UVICORN_INTERNALS = (
    *("on_message_begin", "on_headers_complete", "on_response_complete", "send_400_response"),
    *("app", "asgi_version", "server", "root_path", "logger", "access_logger", "access_log"),
    *("timeout_keep_alive_handler", "_unset_keepalive_if_required", "_start_asgi_task"),
    *("app_state", "client", "cycle", "expect_100_continue", "flow", "headers", "url"),
    *("limit_concurrency", "loop", "parser", "pipeline", "scheme", "scope", "server_state"),
    *("tasks", "timeout_keep_alive", "transport", "connections", "on_body"),
    *("on_message_complete", "shutdown"),
)
# What this module reads and sets on uvicorn's own request cycle.
ASGI_CYCLE_INTERNALS = ("response_started", "response_complete", "disconnected", "message_event")
# What uvicorn reads and sets on a request's cycle (a lane request's is a _LaneCycle).
CYCLE_INTERNALS = ("disconnected", "keep_alive", "message_event", "more_body", "response_complete")
# Lane answers a connection may have pending; more pipelined requests wait their turn.
MAX_PIPELINED = 32
# After SIGTERM an idle kept-alive connection stays open this long (Envoy's drain, briefly): a
# client that sends on it meanwhile gets its answer with Connection: close and moves on, where
# a close at once would race its request. Busy connections end after their answer, as before.
IDLE_DRAIN_SECONDS = 1.0


class _NoEvent:
    """uvicorn sets its cycle's message_event when body or disconnect news arrives; a lane
    request has no body and nobody waits on it."""

    @staticmethod
    def set() -> None:
        """Nothing to wake."""


class _LaneCycle:
    """What uvicorn keeps of a request in progress, for a lane request: its place in the
    connection's order of answers and the flags uvicorn reads and sets."""

    __slots__ = (
        "asgi",
        "data",
        "disconnected",
        "keep_alive",
        "lane",
        "more_body",
        "protocol",
        "request",
        "response_complete",
        "started",
    )
    message_event = _NoEvent()

    def __init__(self, protocol: "LaneProtocol", lane: LaneHandler, request: LaneRequest) -> None:
        self.protocol = protocol
        self.lane = lane
        self.request = request
        self.started = time.perf_counter()
        self.data: bytes | None = None  # the encoded answer, once ready
        self.asgi: RequestResponseCycle | None = None  # handed to the ASGI app after all
        # uvicorn clears it on shutdown; a request that arrives while draining is the last.
        self.keep_alive = protocol.parser.should_keep_alive() and not protocol.draining
        self.response_complete = False
        self.disconnected = False
        self.more_body = False

    def finish(self, answer: Answer) -> None:
        """The answer is ready: encode it, send what is ready in order, count and log it.
        TO_ASGI instead: the ASGI app answers the request, in its turn (and counts it)."""
        if self.data is not None or self.asgi is not None:
            return  # answered already
        request, lane, protocol = self.request, self.lane, self.protocol
        if answer is TO_ASGI:
            self.asgi = protocol.asgi_cycle(self)
            protocol.send_ready()
            return
        self.data = encode(
            answer,
            request_id=request.request_id,
            default_headers=protocol.server_state.default_headers,
            extra_headers=request.reply_headers(lane),
            keep_alive=self.keep_alive,
        )
        protocol.send_ready()
        finished(
            "GET",
            request.path,
            request.route,
            answer.status_code,
            time.perf_counter() - self.started,
            log_extra=request.log_extra,
            access_log=lane.access_log,
            request_id=request.request_id,
            hop=request.hop,
        )


class LaneProtocol(HttpToolsProtocol):
    """HttpToolsProtocol over a CoalescingTransport, with a keep-alive timer per idle stretch,
    that hands the GETs the service's lane accepts to it.

    uvicorn arms a keep-alive timer after every response and cancels it when the next
    request's bytes arrive: a timer made and dropped per request. Here a response notes when
    the connection went idle and arms a timer only if none is armed. Pipelined lane requests
    (our proxies send the GETs of one moment together on one connection) run at the same
    time; their answers leave in the order they were asked.
    """

    # Set per service by configured(): how long a client may take to send a request's head,
    # or to send more of its body (nginx's client_header_timeout and client_body_timeout),
    # and how many connections the process keeps open at most.
    read_timeout = 10.0
    max_connections = 10_000
    _refused_at = 0.0  # when a connection over the cap was last logged
    _partial = False  # part of a request has come in, not all of it
    draining = False  # the server is stopping: every answer from now on ends the connection

    @classmethod
    def configured(cls, *, read_timeout: float, max_connections: int) -> type["LaneProtocol"]:
        """This protocol with a service's limits (uvicorn takes a class, not an instance)."""
        limits = {"read_timeout": read_timeout, "max_connections": max_connections}
        return type(cls.__name__, (cls,), limits)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Hand uvicorn the wrapped transport; the client has read_timeout to send a request."""
        self.coalescing = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(cast(Any, self.coalescing))
        self._slots: deque[_LaneCycle] = deque()
        self._idle = Stretch(self.loop, self.timeout_keep_alive, self.timeout_keep_alive_handler)
        self._reading = Stretch(self.loop, self.read_timeout, self._read_timed_out)
        if len(self.connections) > self.max_connections:
            self._refuse()
            return
        self._reading.start()

    def _refuse(self) -> None:
        now = self.loop.time()
        if now - LaneProtocol._refused_at >= 1.0:  # one line a second, however many come
            LaneProtocol._refused_at = now
            log.warning("over MAX_CONNECTIONS (%d): closing new connections", self.max_connections)
        self.transport.close()

    def _read_timed_out(self) -> None:
        """The client sent no complete request head, or no more of a body, in read_timeout."""
        if self.flow.read_paused:
            self._reading.start()  # the app is not reading the body yet: not the client's delay
            return
        cycle = self.cycle
        in_progress = cycle is not None and not cycle.response_complete
        if not self._partial or self._slots or (in_progress and cycle.response_started):
            # Nothing of a request came (a 408 would answer nothing, as nginx sees it), or
            # an answer is on its way and a 408 cannot go in between.
            self.transport.close()
        else:
            answer = encode(
                error_response(408, "Request not received in time"),
                request_id=request_id_from(self.headers or []),
                default_headers=self.server_state.default_headers,
                keep_alive=False,
            )
            self.transport.write(answer)
            self.transport.close()
        if in_progress:  # the app waiting for the body learns the client is gone
            cycle.disconnected = True
            cycle.message_event.set()

    def shutdown(self) -> None:
        """uvicorn's (the server is stopping), but an idle connection gets IDLE_DRAIN_SECONDS
        to carry one more request; /readyz answers 503 from now on."""
        mark_draining()
        self.draining = True
        if self._busy():
            super().shutdown()  # its answer says Connection: close and ends it
            return
        self._idle.cancel()
        self.loop.call_later(IDLE_DRAIN_SECONDS, self._drained)

    def _busy(self) -> bool:
        return bool(self._slots) or (self.cycle is not None and not self.cycle.response_complete)

    def _drained(self) -> None:
        """The drain is over: an idle connection closes (a busy one ends after its answer)."""
        if not self._busy():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are not HTTP, in the envelope every other 4xx has."""
        answer = encode(
            error_response(400, msg),
            request_id=request_id_from(self.headers or []),
            default_headers=self.server_state.default_headers,
            keep_alive=False,
        )
        self.transport.write(answer)
        self.transport.close()

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn calls this when bytes arrive: the connection is busy, not idle.
        self._idle.stop()

    def on_response_complete(self) -> None:
        """uvicorn's, with the idle stretch (one lazy timer) in place of a timer per request."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle.start()

    def connection_lost(self, exc: Exception | None) -> None:
        """uvicorn's, and the timers go too."""
        super().connection_lost(exc)
        self._idle.cancel()
        self._reading.cancel()
        for slot in self._slots:
            if slot.asgi is not None:  # an ASGI answer in progress learns the client left
                slot.asgi.disconnected = True
                slot.asgi.message_event.set()

    def on_message_begin(self) -> None:
        """What uvicorn resets for each request, but not its ASGI scope (a dict and a copy of
        the lifespan state): a lane request needs none, so it is built only for ASGI. The
        client has read_timeout to send the rest of the head."""
        self._reading.start()
        self._partial = True
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def _build_scope(self) -> None:
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        self.scope["headers"] = headers

    def on_body(self, body: bytes) -> None:
        """uvicorn's; each piece of a body gives the client read_timeout for the next."""
        self._reading.start()
        super().on_body(body)

    def on_message_complete(self) -> None:
        """uvicorn's; the request is all in."""
        self._reading.stop()
        self._partial = False
        super().on_message_complete()

    def on_headers_complete(self) -> None:
        """Hand a GET the lane accepts to it; anything else goes the ASGI way."""
        lane: LaneHandler | None = self.app_state.get(LANE)
        request = None if lane is None else self._lane_request()
        if lane is None or request is None or not lane.accepts(request):
            self._reading.start()  # a body, if one follows, must start coming in time
            self._build_scope()
            super().on_headers_complete()  # queues behind pending lane answers, if any
            if self.draining:  # the last request of a draining connection
                self.cycle.keep_alive = False
            return
        request.hop = trace_start("GET", request.path, request.route, *request.trace_context)
        cycle = _LaneCycle(self, lane, request)
        self.cycle = cast(RequestResponseCycle, cycle)
        self._slots.append(cycle)
        try:
            started = lane.start(request, cycle.finish)
        except Exception:
            log.exception("unhandled error on GET %s", request.path)
            cycle.finish(error_response(500, "Internal server error"))
            return
        if not started:
            answer_later(request, lane.respond(request), cycle.finish, tasks=self.tasks)

    def _lane_request(self) -> LaneRequest | None:
        """The request, if it may take the lane: a bodiless HTTP/1.1 GET that is not queued
        behind an ASGI request of the same connection."""
        parser = self.parser
        if (
            parser.get_method() != b"GET"
            or parser.get_http_version() != "1.1"
            or parser.should_upgrade()
            or self.expect_100_continue
            or self.limit_concurrency is not None
            or len(self._slots) >= MAX_PIPELINED
            # An ASGI request in progress or queued: uvicorn runs what follows it in turn.
            or (self.cycle is not None and not self.cycle.response_complete and not self._slots)
            or self.pipeline
        ):
            return None
        return LaneRequest.parsed(
            self.url, self.headers, client=self.client, scheme=self.scheme or "http"
        )

    def asgi_cycle(self, slot: _LaneCycle) -> RequestResponseCycle:
        """uvicorn's cycle for a lane request the ASGI app answers after all; it starts when
        the answers before it are written, and its end lets the ones after it go."""
        request = slot.request
        # The id the lane gave the request, so both paths log it under one.
        headers = [(name, value) for name, value in request.headers if name != b"x-request-id"]
        headers.append((b"x-request-id", request.request_id.encode()))
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": request.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": self.root_path,
            "path": request.path,
            "raw_path": request.raw_path,
            "query_string": request.query,
            "headers": headers,
            "state": self.app_state.copy(),
            **(request.scope_extra or {}),
        }
        if request.hop is not None:
            scope[tracing.SCOPE_KEY] = request.hop

        def answered() -> None:
            slot.response_complete = True
            self._slots.popleft()
            if self._slots:
                self.server_state.total_requests += 1
                self.send_ready()
            else:
                self.on_response_complete()

        cycle = RequestResponseCycle(
            scope=cast(Any, scope),
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=slot.keep_alive,
            on_response=answered,
        )
        # A lane request has no body and was read whole: what on_message_complete says.
        cycle.more_body = False
        cycle.message_event.set()
        return cycle

    def send_ready(self) -> None:
        """Write the answers at the head of the line that are ready, in order; an answer the
        ASGI app gives starts at its turn, and the ones behind it wait for its end."""
        slots = self._slots
        while slots:
            head = slots[0]
            if head.asgi is not None:
                if head.data is None:
                    head.data = b""  # started: its end (answered()) lets the rest go
                    self._start_asgi_task(head.asgi, self.app)
                return
            data = head.data
            if data is None:
                return
            slots.popleft()
            if head.disconnected or self.transport.is_closing():
                pass
            elif slots:
                self.transport.write(data)  # joined with the answers after it
            else:
                # The last answer owed: it leaves now, with any queued before it, rather
                # than after this turn of the loop.
                self.coalescing.write_through(data)
            # Complete only once written: uvicorn starts a request queued behind it then.
            head.response_complete = True
            if not head.keep_alive:
                slots.clear()
                self.transport.close()
            if slots:
                self.server_state.total_requests += 1  # on_response_complete counts the last
            else:
                self.on_response_complete()
