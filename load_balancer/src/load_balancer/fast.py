"""The balancer's fast lane: forwarded GETs, below ASGI, with the same retries and failover.

The first try goes out from the parser callback that read the request, on a connection that
is ready, and its answer is relayed from the callback that read it: no task, no extra turn of
the event loop (FastLaneHandler.start). Anything else (no ready connection, a failed first
try and the retries after it) runs Balancer.run in a task, as every try did before.
"""

import time

from svc_common.docs import is_docs_path
from svc_common.fastlane import (
    Answer,
    Deliver,
    FastLaneHandler,
    FastRequest,
    RawAnswer,
    answer_later,
)
from svc_common.proxy import lane_headers, relayed_headers, route_label
from svc_common.upstream import Reply, UpstreamError, UpstreamPool, request_head

from load_balancer.backends import Backend
from load_balancer.proxy import OWN_PATHS, Balancer, give_up
from load_balancer.retries import TryFailed


def _failure(exc: UpstreamError, left: float, timeout: float) -> TryFailed:
    """A try's UpstreamError as the aiohttp path classifies it."""
    # Out of time for the whole request, not just this try: no retry (as aiohttp's total).
    reason = "deadline" if exc.reason == "timeout" and left <= timeout else exc.reason
    return TryFailed(reason, exc.error, sent=exc.sent)


class BalancerLane(FastLaneHandler):
    """Sends a GET to a backend over a pooled raw connection; Balancer.run decides the tries."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.settings = balancer.settings
        self.access_log = balancer.settings.access_log

    def accepts(self, request: FastRequest) -> bool:
        """Every GET that is not one of the balancer's own paths."""
        path = request.path
        if path in OWN_PATHS or is_docs_path(path):
            return False
        request.route = route_label(path)
        return True

    def start(self, request: FastRequest, deliver: Deliver) -> bool:
        """The first try, when the backend whose turn it is has a ready connection."""
        backend = self.balancer.pool.pick([])
        if backend is None:
            return False
        pool = self._pool(backend)
        headers = lane_headers(request, keep_forwarded=True)
        first = FirstTry(self, request, deliver, backend, headers)
        if not pool.send_now(
            request_head(request.target, pool.host, headers), first, time_limit=first.timeout
        ):
            request.note = backend  # its turn is taken: respond() starts there
            return False
        first.started = backend.try_sent()
        return True

    async def respond(self, request: FastRequest) -> Answer:
        """The first backend answer, relayed; or 502/503/504 when no backend answered."""
        headers = lane_headers(request, keep_forwarded=True)
        first = request.note if isinstance(request.note, Backend) else None
        return await self.tries(request, headers, first=first)

    async def tries(
        self,
        request: FastRequest,
        headers: list[tuple[bytes, bytes]],
        *,
        first: Backend | None = None,
        after: tuple[Backend, TryFailed, float] | None = None,
    ) -> Answer:
        """Balancer.run's tries (after a first one that failed, if given), answered."""
        replies: list[Reply] = []

        async def attempt(backend: Backend, deadline: float) -> int:
            reply = await self._try(backend, request.target, headers, deadline)
            replies.append(reply)
            return reply.status

        outcome = await self.balancer.run(
            "GET", request.path, attempt, resend_ok=True, first=first, after=after
        )
        request.log_extra = outcome.log_extra()
        if outcome.backend is None:
            return give_up(outcome.failure)
        reply = replies[-1]
        return RawAnswer(reply.status, relayed_headers(reply.headers), reply.body)

    async def _try(
        self, backend: Backend, target: bytes, headers: list[tuple[bytes, bytes]], deadline: float
    ) -> Reply:
        """One try; TryFailed, classified as the aiohttp path classifies, when it failed."""
        pool = self._pool(backend)
        left = deadline - time.monotonic()
        timeout = min(self.settings.try_timeout, left)
        started = backend.try_sent()
        reply = None
        try:
            reply = await pool.get(request_head(target, pool.host, headers), time_limit=timeout)
        except UpstreamError as exc:
            raise _failure(exc, left, timeout) from exc
        finally:
            backend.try_done(started, reply.status if reply else None)
        return reply

    def _pool(self, backend: Backend) -> UpstreamPool:
        if backend.connections is None:
            backend.connections = UpstreamPool(
                backend.url,
                connect_timeout=self.settings.connect_timeout,
                keepalive_timeout=self.settings.keepalive_timeout,
                limit=self.settings.pool_limit_per_backend,
                host_header=backend.host_header,
            )
        return backend.connections


class FirstTry:
    """A first try sent from a parser callback; the connection hands it the outcome directly
    (it stands in for the asyncio.Future an awaited try waits on)."""

    __slots__ = (
        "backend",
        "deadline",
        "deliver",
        "ended",
        "headers",
        "lane",
        "request",
        "started",
    )

    def __init__(
        self,
        lane: BalancerLane,
        request: FastRequest,
        deliver: Deliver,
        backend: Backend,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.lane = lane
        self.request = request
        self.deliver = deliver
        self.backend = backend
        self.headers = headers
        self.deadline = time.monotonic() + lane.settings.upstream_timeout
        self.started = 0.0
        self.ended = False

    @property
    def timeout(self) -> float:
        """This try's time limit."""
        return min(self.lane.settings.try_timeout, self.lane.settings.upstream_timeout)

    def done(self) -> bool:
        """Whether the outcome is in (a timeout may come before a late answer)."""
        return self.ended

    def set_result(self, answer: Reply) -> None:
        """The backend answered: relay it."""
        self._end(answer.status)
        self.lane.balancer.answered(self.backend, answer.status)
        self.request.log_extra = {"backend": self.backend.name}
        headers = relayed_headers(answer.headers)
        self.deliver(RawAnswer(answer.status, headers, answer.body))

    def set_exception(self, error: BaseException) -> None:
        """No answer: the retries go on in a task, as Balancer.run decides."""
        self._end(None)
        assert isinstance(error, UpstreamError)
        failure = _failure(error, self.lane.settings.upstream_timeout, self.timeout)
        after = (self.backend, failure, self.deadline)
        answer_later(
            self.request, self.lane.tries(self.request, self.headers, after=after), self.deliver
        )

    def _end(self, status: int | None) -> None:
        self.ended = True
        self.backend.try_done(self.started, status)
