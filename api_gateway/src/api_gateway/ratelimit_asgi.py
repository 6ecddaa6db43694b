"""The rate limit on the ASGI path: every request but probes counted, headers on every answer.

The lane counts its requests with the same RateLimiter, key (caller_key) and 429 (limited).
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from svc_common.auth import Principal, TokenError, TokenVerifier, admit

from api_gateway.config import Network
from api_gateway.forwarded import client_ip
from api_gateway.ratelimit import DECIDED, Decision, RateLimiter, caller_key, limited

# Polled by monitors and probes, which must never be throttled out of seeing an outage.
EXEMPT_PATHS = frozenset({"/saude", "/livez", "/readyz", "/metrics"})


class RateLimitMiddleware:
    """RATE_LIMIT per user (by verified token) or per client IP, with headers on every answer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        verifier: TokenVerifier,
        proxies: tuple[Network, ...],
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.verifier = verifier
        self.proxies = proxies

    def identity(self, scope: Scope) -> str:
        """caller_key() of the request."""
        authorization = next((v for n, v in scope["headers"] if n == b"authorization"), None)
        try:
            principal: Principal | None = admit(self.verifier, authorization)
        except TokenError:
            principal = None
        return caller_key(principal, "" if principal else client_ip(scope, self.proxies))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        decision = scope.get(DECIDED)  # counted on the lane already
        if not isinstance(decision, Decision):
            decision = await self.limiter.hit("default", self.identity(scope))
        if not decision.allowed:
            await limited(decision)(scope, receive, send)
            return
        raw = decision.raw_headers()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = message.get("headers", [])
                # A login 429 carries its own X-RateLimit-*; the IETF fields are lists and add up.
                own = any(name == b"x-ratelimit-limit" for name, _ in present)
                extra = [h for h in raw if not (own and h[0].startswith(b"x-ratelimit"))]
                message["headers"] = [*present, *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
