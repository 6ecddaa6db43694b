"""The gateway's lane: a GET of /itens (or /identidade) with a valid token, forwarded below ASGI.

A thin adapter over the policy the ASGI middleware uses: which paths are forwarded and who is
admitted (proxy.py), the caller's quota and its 429 (ratelimit.py), the forwarded headers and
the failure answers (svc_common.forwarding), gzip (edge.py). A request without a token, with
a bad one, or from a browser origin is declined before any await and gets the ASGI path and
its answers (401, CORS). While the caller's count is decided in process the request goes out
from the parser callback that read it, and the answer back from the one that read the
balancer's (LaneHandler.start): no task and no extra turn of the event loop on either side.
"""

from svc_common.auth import Principal, TokenVerifier
from svc_common.forwarding.failures import UpstreamError
from svc_common.forwarding.headers import forward_headers, relayed_headers, route_label
from svc_common.forwarding.pool import UpstreamPool
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

from api_gateway.config import GatewaySettings
from api_gateway.edge import gzip_wanted, gzipped
from api_gateway.proxy import ANSWERS, admission, is_forwarded
from api_gateway.ratelimit import DECIDED, Decision, RateLimiter, caller_key, limited


class GatewayLane(LaneHandler):
    """Token checked, rate limit counted, request forwarded: the /itens read path."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        pool: UpstreamPool,
        verifier: TokenVerifier,
        limiter: RateLimiter,
    ) -> None:
        self.settings = settings
        self.pool = pool  # the ASGI path's too (proxy.Upstream)
        self.verifier = verifier
        self.limiter = limiter
        self.access_log = settings.access_log

    def accepts(self, request: LaneRequest) -> bool:
        """A forwarded path, an admitted caller, and no CORS request to answer."""
        if not is_forwarded(request.path):
            return False
        if self.settings.cors_origins and request.header(b"origin") is not None:
            return False
        admitted = admission(self.verifier, request.header(b"authorization"))
        if not isinstance(admitted, Principal):
            return False  # the ASGI path answers the same 401
        request.note = admitted
        request.route = route_label(request.path)
        return True

    def start(self, request: LaneRequest, deliver: Deliver) -> bool:
        """Forward from the parser callback when the rate limit is decided in process."""
        decision = self.limiter.hit_now("default", _caller(request))
        if decision is None:
            return False  # respond() counts it, in Redis
        if not decision.allowed:
            deliver(limited(decision))
            return True
        data = self._head(request)

        def on_reply(reply: Reply) -> None:
            self._deliver(request, self.relay(decision, reply), deliver)

        def on_failure(error: UpstreamError) -> None:
            deliver(_failed(request, error, decision))

        waiter = Callback(on_reply, on_failure)
        if not self.pool.send_now(data, waiter, time_limit=self._time_limit, resend=True):
            answer_later(request, self.forward(request, decision, data), deliver)
        return True

    async def respond(self, request: LaneRequest) -> Answer:
        """429 over the limit; else forward()."""
        decision = await self.limiter.hit("default", _caller(request))
        if not decision.allowed:
            return limited(decision)
        return await self.forward(request, decision, self._head(request))

    async def forward(self, request: LaneRequest, decision: Decision, data: bytes) -> Answer:
        """The balancer's answer, or 502/503/504 without one."""
        try:
            reply = await self.pool.get(data, time_limit=self._time_limit, resend=True)
        except UpstreamError as exc:
            return _failed(request, exc, decision)
        answer = self.relay(decision, reply)
        return await self._gzipped(request, answer) if self._worth_gzip(request, answer) else answer

    def relay(self, decision: Decision, reply: Reply) -> Answer:
        """The balancer's answer with the rate-limit headers."""
        headers = relayed_headers(reply.headers)
        headers += decision.raw_headers()
        return RawAnswer(reply.status, headers, reply.body)

    def _deliver(self, request: LaneRequest, answer: Answer, deliver: Deliver) -> None:
        """deliver(answer), gzipped first (in a task) when the client asks and it is worth it."""
        if self._worth_gzip(request, answer):
            answer_later(request, self._gzipped(request, answer), deliver)
        else:
            deliver(answer)

    def _worth_gzip(self, request: LaneRequest, answer: Answer) -> bool:
        return gzip_wanted(request.headers, len(answer.body), self.settings.gzip_min_bytes)

    async def _gzipped(self, request: LaneRequest, answer: Answer) -> Answer:
        return await gzipped(answer, request.headers, min_size=self.settings.gzip_min_bytes)

    def _head(self, request: LaneRequest) -> bytes:
        headers = forward_headers(
            request.headers,
            client_ip=request.client_ip,
            scheme=request.scheme,
            request_id=request.request_id,
            hop=request.hop,
        )
        return request_head(request.target, self.pool.host, headers)

    @property
    def _time_limit(self) -> float:
        return self.settings.upstream_timeout


def _caller(request: LaneRequest) -> str:
    principal = request.note
    assert isinstance(principal, Principal)
    return caller_key(principal, request.client_ip)


def _failed(request: LaneRequest, error: UpstreamError, decision: Decision) -> Answer:
    """502/503/504 with the rate-limit headers; an answer too big to hold goes the ASGI way,
    which streams it, with the decision this request was already counted for."""
    if error.reason == "oversize":
        request.scope_extra = {DECIDED: decision}
        return TO_ASGI
    return ANSWERS.answer(error, decision.headers())
