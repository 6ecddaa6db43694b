"""The gateway's fast lane: GET /itens with a valid token, forwarded below ASGI.

Only the plain case takes it: a GET of a forwarded path whose bearer token verifies, and, when
CORS is on, no Origin. A request without a token, with a bad one, or from a browser origin
is declined before any await and gets the ASGI path and its answers (401, CORS) as always.
Here the request is counted against RATE_LIMIT, sent to the balancer over a pooled raw
connection, and the answer comes back with the rate-limit headers (and gzip when asked for
and worth it), as the ASGI middleware would have sent it.
"""

from svc_common.auth import Principal, TokenError, TokenVerifier, bearer_token
from svc_common.envelope import error_response
from svc_common.fastlane import Answer, FastLaneHandler, FastRequest, RawAnswer
from svc_common.proxy import lane_headers, relayed_headers, route_label
from svc_common.upstream import UpstreamError, UpstreamPool, request_head

from api_gateway.config import GatewaySettings
from api_gateway.edge import accepts_gzip, gzip_body
from api_gateway.proxy import is_forwarded
from api_gateway.ratelimit import RateLimiter

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

    async def respond(self, request: FastRequest) -> Answer:
        """429 over the limit; else the balancer's answer, or 502/503/504 without one."""
        principal = request.note
        assert isinstance(principal, Principal)
        decision = await self.limiter.hit("default", "user:" + principal.username)
        if not decision.allowed:
            return error_response(429, "Rate limit exceeded", headers=decision.headers())
        data = request_head(request.target, self.pool.host, lane_headers(request))
        try:
            reply = await self.pool.get(
                data, time_limit=self.settings.upstream_timeout, retry_stale=True
            )
        except UpstreamError as exc:
            status, message = _UNAVAILABLE[exc.reason]
            limits = decision.headers()
            if status == 503:
                limits["Retry-After"] = "1"
            return error_response(status, message, headers=limits)
        out = relayed_headers(reply.headers)
        out += decision.raw_headers()
        body = reply.body
        if len(body) >= self.settings.gzip_min_bytes and accepts_gzip(request.headers):
            body = gzip_body(out, body)
        return RawAnswer(reply.status, out, body)

    def close(self) -> None:
        """Close the pooled connections (lifespan end)."""
        self.pool.close()
