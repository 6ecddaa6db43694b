"""The balancer's lane: forwarded GETs below ASGI, through the same Balancer.run.

The first try goes out from the parser callback that read the request, on a connection that
is ready, and its answer is relayed from the callback that read it: no task, no extra turn of
the event loop (LaneHandler.start). Anything else (no ready connection, a failed first try
and the retries after it) runs Balancer.run in a task, with the policy the ASGI path uses:
which paths are forwarded, the headers, the retries and the failure answers.
"""

import time

from svc_common.forwarding.failures import UpstreamError
from svc_common.forwarding.headers import forward_headers, relayed_headers, route_label
from svc_common.forwarding.replies import Callback, Reply, request_head
from svc_common.serving.lane import (
    TO_ASGI,
    Answer,
    Deliver,
    LaneHandler,
    LaneRequest,
    RawAnswer,
    answer_later,
)

from load_balancer.backends import Backend
from load_balancer.proxy import Balancer, as_try, give_up, is_forwarded


class _Oversize(Exception):
    """A backend's answer is too big for the lane to hold."""


def _relayed(reply: Reply) -> Answer:
    return RawAnswer(reply.status, relayed_headers(reply.headers), reply.body)


class BalancerLane(LaneHandler):
    """Sends a GET to a backend over a pooled raw connection; Balancer.run decides the tries."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.settings = balancer.settings
        self.access_log = balancer.settings.access_log

    def accepts(self, request: LaneRequest) -> bool:
        """Every GET of a forwarded path."""
        if not is_forwarded(request.path):
            return False
        request.route = route_label(request.path)
        return True

    def start(self, request: LaneRequest, deliver: Deliver) -> bool:
        """The first try, when the backend whose turn it is has a ready connection."""
        backend = self.balancer.pool.pick([])
        if backend is None:
            return False
        pool = self.balancer.pool.connections(backend)
        headers = self._headers(request)
        deadline = time.monotonic() + self.settings.upstream_timeout
        timeout = self.balancer.try_time(deadline)
        started = 0.0

        def on_reply(reply: Reply) -> None:
            backend.try_done(started, reply.status)
            self.balancer.answered(backend, reply.status)
            request.log_extra = {"backend": backend.name}
            deliver(_relayed(reply))

        def on_failure(error: UpstreamError) -> None:
            backend.try_done(started, None)
            if error.reason == "oversize":
                deliver(TO_ASGI)
                return
            after = (backend, as_try(error, self.settings.upstream_timeout, timeout), deadline)
            answer_later(request, self.tries(request, headers, after=after), deliver)

        data = request_head(request.target, pool.host, headers)
        waiter = Callback(on_reply, on_failure)
        # The retry policy (Balancer.run) decides where an unanswered GET goes again.
        if not pool.send_now(data, waiter, time_limit=timeout, resend=False):
            request.note = backend  # its turn is taken: respond() starts there
            return False
        started = backend.try_sent()
        return True

    async def respond(self, request: LaneRequest) -> Answer:
        """The first backend answer, relayed; or 502/503/504 when no backend answered."""
        first = request.note if isinstance(request.note, Backend) else None
        return await self.tries(request, self._headers(request), first=first)

    async def tries(
        self,
        request: LaneRequest,
        headers: list[tuple[bytes, bytes]],
        *,
        first: Backend | None = None,
        after: tuple[Backend, UpstreamError, float] | None = None,
    ) -> Answer:
        """Balancer.run's tries (after a first one that failed, if given), answered."""
        replies: list[Reply] = []
        tried = [after[0]] if after else []

        async def attempt(backend: Backend, deadline: float) -> int:
            fresh = backend in tried  # sent there before: its connection closed unanswered
            tried.append(backend)
            try:
                reply = await self._try(backend, request.target, headers, deadline, fresh=fresh)
            except UpstreamError as exc:
                if exc.reason == "oversize":
                    raise _Oversize from exc  # not a failure of the backend: no retry
                raise
            replies.append(reply)
            return reply.status

        try:
            outcome = await self.balancer.run(
                "GET", request.path, attempt, resend_ok=True, first=first, after=after
            )
        except _Oversize:
            return TO_ASGI  # the ASGI path streams it
        request.log_extra = outcome.log_extra()
        if outcome.backend is None:
            return give_up(outcome.failure)
        return _relayed(replies[-1])

    async def _try(
        self,
        backend: Backend,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        deadline: float,
        *,
        fresh: bool,
    ) -> Reply:
        """One try; UpstreamError when it failed."""
        pool = self.balancer.pool.connections(backend)
        left = deadline - time.monotonic()
        timeout = self.balancer.try_time(deadline)
        started = backend.try_sent()
        reply = None
        try:
            data = request_head(target, pool.host, headers)
            reply = await pool.get(data, time_limit=timeout, resend=False, fresh=fresh)
        except UpstreamError as exc:
            raise as_try(exc, left, timeout) from exc
        finally:
            backend.try_done(started, reply.status if reply else None)
        return reply

    @staticmethod
    def _headers(request: LaneRequest) -> list[tuple[bytes, bytes]]:
        return forward_headers(
            request.headers,
            client_ip=request.client_ip,
            scheme=request.scheme,
            request_id=request.request_id,
            hop=request.hop,
            keep_forwarded=True,
        )
