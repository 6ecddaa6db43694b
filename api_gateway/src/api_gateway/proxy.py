"""Forwarding the item servers' paths to the load balancer, and the policy the lane shares:
which paths are forwarded, who is admitted, and what a failed forward answers."""

import logging

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from svc_common.auth import Principal, TokenError, TokenVerifier, admit
from svc_common.envelope import error_response
from svc_common.forwarding.asgi import (
    BodyTooLarge,
    RelayInterrupted,
    client_address,
    forward,
    read_body,
    upstream_headers,
)
from svc_common.forwarding.failures import FailureAnswers, UpstreamError
from svc_common.forwarding.headers import route_label
from svc_common.forwarding.pool import IDLE_SECONDS, UpstreamPool

from api_gateway.config import GatewaySettings

log = logging.getLogger("api_gateway.proxy")

FORWARDED_PREFIX = "/itens"
# The item servers' other route: which instance answered (the seed's balancing check).
FORWARDED_PATHS = frozenset({"/identidade"})
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ANSWERS = FailureAnswers(
    unreachable="Load balancer unreachable", timed_out="Upstream timed out", failed="Bad gateway"
)


def is_forwarded(path: str) -> bool:
    """Paths that belong to the item servers."""
    return (
        path == FORWARDED_PREFIX
        or path.startswith(FORWARDED_PREFIX + "/")
        or path in FORWARDED_PATHS
    )


def admission(verifier: TokenVerifier, authorization: bytes | None) -> Principal | Response:
    """The caller a forwarded request is sent for, or the 401 that refuses it."""
    try:
        return admit(verifier, authorization)
    except TokenError as exc:
        return error_response(401, str(exc), headers=_CHALLENGE)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands out an already read body, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class Upstream:
    """The load balancer, reached through one pool of keep-alive connections that the lane
    and the ASGI path share."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.pool: UpstreamPool | None = None

    def start(self) -> UpstreamPool:
        """Open the pool (lifespan start: it needs the running loop)."""
        self.pool = UpstreamPool(
            self.settings.load_balancer_url,
            connect_timeout=self.settings.connect_timeout,
            keepalive_timeout=IDLE_SECONDS,
            limit=self.settings.pool_limit,
        )
        return self.pool

    def close(self) -> None:
        """Close its connections (lifespan end)."""
        if self.pool is not None:
            self.pool.close()


class GatewayProxyMiddleware:
    """Checks the bearer token and forwards the servers' paths; the rest goes to the app."""

    def __init__(self, app: ASGIApp, *, upstream: Upstream, verifier: TokenVerifier) -> None:
        self.app = app
        self.upstream = upstream
        self.verifier = verifier
        self.max_body = upstream.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not is_forwarded(scope["path"]):
            await self._own_route(scope, receive, send)
            return
        scope["route_template"] = route_label(scope["path"])
        refusal = self._refuse(scope)
        if refusal is None:
            try:
                body = await read_body(receive, limit=self.max_body)
            except BodyTooLarge:
                refusal = self._too_large()
            else:
                refusal = await self._relay(scope, send, body)
        if refusal is not None:
            await refusal(scope, receive, send)

    async def _own_route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The gateway's own routes get the same MAX_BODY_BYTES, read before any parsing."""
        if scope["method"] in _BODY_METHODS:
            refusal = self._declared_too_large(scope)
            if refusal is None:
                try:
                    receive = _replay(await read_body(receive, limit=self.max_body), receive)
                except BodyTooLarge:
                    refusal = self._too_large()
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _too_large(self) -> Response:
        return error_response(413, f"Request body over {self.max_body} bytes")

    def _declared_too_large(self, scope: Scope) -> Response | None:
        declared = (_header(scope, b"content-length") or b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_body:
            return self._too_large()
        return None

    def _refuse(self, scope: Scope) -> Response | None:
        """A 401 or 413 decided from the headers alone, before reading the body."""
        admitted = admission(self.verifier, _header(scope, b"authorization"))
        if isinstance(admitted, Response):
            return admitted
        return self._declared_too_large(scope)

    async def _relay(self, scope: Scope, send: Send, body: bytes) -> Response | None:
        """Forward to the balancer; the error to answer with when that fails."""
        assert self.upstream.pool is not None, "Upstream.start() was not called"
        headers = upstream_headers(scope, client_ip=client_address(scope))
        try:
            await forward(
                self.upstream.pool,
                scope,
                send,
                headers=headers,
                body=body,
                time_limit=self.upstream.settings.upstream_timeout,
                resend=True,
            )
        except RelayInterrupted:
            log.warning("load balancer dropped a response midway")
        except UpstreamError as exc:
            return ANSWERS.answer(exc)
        return None
