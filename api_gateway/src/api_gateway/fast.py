"""The gateway's fast lane: GET /itens with a valid token, forwarded below ASGI.

Only the plain case takes it: a GET of a forwarded path whose bearer token verifies, and, when
CORS is on, no Origin. A request without a token, with a bad one, or from a browser origin
is declined before any await and gets the ASGI path and its answers (401, CORS) as always.
Here the request is counted against RATE_LIMIT, sent to the balancer over a pooled raw
connection, and the answer comes back with the rate-limit headers (and gzip when asked for
and worth it), as the ASGI middleware would have sent it. While the caller's count is decided
in process (svc_common's counters, far below the limit) the request goes out from the parser
callback that read it, and the answer back from the one that read the balancer's
(FastLaneHandler.start): no task and no extra turn of the event loop on either side.
"""

from svc_common.auth import Principal, TokenError, TokenVerifier, bearer_token
from svc_common.envelope import error_response
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

from api_gateway.config import GatewaySettings
from api_gateway.edge import accepts_gzip, gzip_body
from api_gateway.proxy import is_forwarded
from api_gateway.ratelimit import Decision, RateLimiter

# Below the balancer's keep-alive (75 s), so the gateway closes an idle connection first.
KEEPALIVE_SECONDS = 4.0
_UNAVAILABLE = {
    "connect": (503, "Load balancer unreachable"),
    "timeout": (504, "Upstream timed out"),
    "reset": (502, "Bad gateway"),
}


class GatewayLane(FastLaneHandler):
    """Token checked, rate limit counted, request forwarded: the /itens read path."""

    def __init__(
        self, settings: GatewaySettings, *, verifier: TokenVerifier, limiter: RateLimiter
    ) -> None:
        self.settings = settings
        self.verifier = verifier
        self.limiter = limiter
        self.access_log = settings.access_log
        self.pool = UpstreamPool(
            settings.load_balancer_url,
            connect_timeout=settings.connect_timeout,
            keepalive_timeout=KEEPALIVE_SECONDS,
            limit=settings.pool_limit,
        )

    def accepts(self, request: FastRequest) -> bool:
        """A forwarded path, a token that verifies, and no CORS request to answer."""
        if not is_forwarded(request.path):
            return False
        if self.settings.cors_origins and request.header(b"origin") is not None:
            return False
        authorization = request.header(b"authorization")
        token = bearer_token(authorization.decode("latin-1")) if authorization else None
        if token is None:
            return False
        try:
            request.note = self.verifier.verify(token)
        except TokenError:
            return False
        request.route = route_label(request.path)
        return True

    def start(self, request: FastRequest, deliver: Deliver) -> bool:
        """Forward from the parser callback when the rate limit is decided in process."""
        decision = self.limiter.hit_now("default", _caller(request))
        if decision is None:
            return False  # respond() counts it, in Redis
        if not decision.allowed:
            deliver(_limited(decision))
            return True
        data = self._head(request)
        forward = Forward(self, request, deliver, decision, data)
        if not self.pool.send_now(data, forward, time_limit=self._time_limit):
            answer_later(request, self.forward(request, decision, data), deliver)
        return True

    async def respond(self, request: FastRequest) -> Answer:
        """429 over the limit; else forward()."""
        decision = await self.limiter.hit("default", _caller(request))
        if not decision.allowed:
            return _limited(decision)
        return await self.forward(request, decision, self._head(request))

    async def forward(
        self, request: FastRequest, decision: Decision, data: bytes, *, fresh: bool = False
    ) -> Answer:
        """The balancer's answer, or 502/503/504 without one."""
        try:
            reply = await self.pool.get(
                data, time_limit=self._time_limit, retry_stale=True, fresh=fresh
            )
        except UpstreamError as exc:
            return _unavailable(exc, decision)
        return self.relay(request, decision, reply)

    def relay(self, request: FastRequest, decision: Decision, reply: Reply) -> Answer:
        """The balancer's answer with the rate-limit headers, gzipped when asked and worth it."""
        out = relayed_headers(reply.headers)
        out += decision.raw_headers()
        body = reply.body
        if len(body) >= self.settings.gzip_min_bytes and accepts_gzip(request.headers):
            body = gzip_body(out, body)
        return RawAnswer(reply.status, out, body)

    def _head(self, request: FastRequest) -> bytes:
        return request_head(request.target, self.pool.host, lane_headers(request))

    @property
    def _time_limit(self) -> float:
        return self.settings.upstream_timeout

    def close(self) -> None:
        """Close the pooled connections (lifespan end)."""
        self.pool.close()


def _caller(request: FastRequest) -> str:
    principal = request.note
    assert isinstance(principal, Principal)
    return "user:" + principal.username


def _limited(decision: Decision) -> Answer:
    return error_response(429, "Rate limit exceeded", headers=decision.headers())


def _unavailable(exc: UpstreamError, decision: Decision) -> Answer:
    status, message = _UNAVAILABLE[exc.reason]
    limits = decision.headers()
    if status == 503:
        limits["Retry-After"] = "1"
    return error_response(status, message, headers=limits)


class Forward:
    """A request sent from a parser callback; the connection hands it the outcome directly
    (it stands in for the asyncio.Future an awaited request waits on)."""

    __slots__ = ("data", "decision", "deliver", "ended", "lane", "request")

    def __init__(
        self,
        lane: GatewayLane,
        request: FastRequest,
        deliver: Deliver,
        decision: Decision,
        data: bytes,
    ) -> None:
        self.lane = lane
        self.request = request
        self.deliver = deliver
        self.decision = decision
        self.data = data
        self.ended = False

    def done(self) -> bool:
        """Whether the outcome is in (a timeout may come before a late answer)."""
        return self.ended

    def set_result(self, reply: Reply) -> None:
        """The balancer answered: relay it."""
        self.ended = True
        self.deliver(self.lane.relay(self.request, self.decision, reply))

    def set_exception(self, error: BaseException) -> None:
        """No answer: a reused connection that broke gets one more try on a new one."""
        self.ended = True
        assert isinstance(error, UpstreamError)
        if error.reason == "reset":
            again = self.lane.forward(self.request, self.decision, self.data, fresh=True)
            answer_later(self.request, again, self.deliver)
        else:
            self.deliver(_unavailable(error, self.decision))
