"""The balancer's fast lane: forwarded GETs, below ASGI, with the same retries and failover."""

import time

from svc_common.docs import is_docs_path
from svc_common.fastlane import Answer, FastLaneHandler, FastRequest, RawAnswer
from svc_common.proxy import lane_headers, relayed_headers, route_label
from svc_common.upstream import Reply, UpstreamError, UpstreamPool, request_head

from load_balancer.backends import Backend
from load_balancer.proxy import OWN_PATHS, Balancer, give_up
from load_balancer.retries import TryFailed


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

    async def respond(self, request: FastRequest) -> Answer:
        """The first backend answer, relayed; or 502/503/504 when no backend answered."""
        headers = lane_headers(request, keep_forwarded=True)
        replies: list[Reply] = []

        async def attempt(backend: Backend, deadline: float) -> int:
            reply = await self._try(backend, request.target, headers, deadline)
            replies.append(reply)
            return reply.status

        outcome = await self.balancer.run("GET", request.path, attempt, resend_ok=True)
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
            # Out of time for the whole request, not just this try: no retry (as aiohttp's total).
            reason = "deadline" if exc.reason == "timeout" and left <= timeout else exc.reason
            raise TryFailed(reason, exc.error, sent=exc.sent) from exc
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
