"""The forwarding path: plain ASGI, no routing or pydantic work per request."""

import logging
import time

import aiohttp
from starlette.types import ASGIApp, Receive, Scope, Send
from svc_common.docs import is_docs_path
from svc_common.envelope import error_response
from svc_common.proxy import (
    RelayInterrupted,
    client_address,
    forward,
    new_session,
    read_body,
    route_label,
    upstream_headers,
)

from load_balancer.backends import Backend, BackendPool
from load_balancer.config import BalancerSettings

log = logging.getLogger("load_balancer.proxy")

# The balancer's own endpoints (and its docs); every other path belongs to the backends.
OWN_PATHS = frozenset({"/saude", "/metrics", "/status"})


class Balancer:
    """Sends each request to the next backend, moving on when one cannot be reached."""

    def __init__(self, settings: BalancerSettings) -> None:
        self.settings = settings
        self.pool = BackendPool(settings.servidores)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the shared keep-alive session (lifespan start)."""
        self._session = new_session(
            total_timeout=self.settings.upstream_timeout,
            connect_timeout=self.settings.connect_timeout,
            limit=self.settings.pool_limit,
            limit_per_host=self.settings.pool_limit,
        )

    async def close(self) -> None:
        """Close the session (lifespan end)."""
        if self._session is not None:
            await self._session.close()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Forward one request, failing over to the next backend on a connect error."""
        assert self._session is not None, "Balancer.start() was not called"
        scope["route_template"] = route_label(scope["path"])
        body = await read_body(receive)
        headers = upstream_headers(scope, client_ip=client_address(scope))
        for backend in self.pool.rotation():
            started = time.perf_counter()
            backend.in_flight += 1
            backend.requests += 1
            try:
                status = await forward(
                    self._session, backend.url, scope, send, body=body, headers=headers
                )
                self._log(scope, backend, status, started)
                return
            except aiohttp.ClientConnectorError as exc:
                # Nothing reached the backend, so any method may safely go to the next one.
                self._failed(backend, exc)
                continue
            except RelayInterrupted as exc:
                # Headers are already out: all that is left is to drop the connection.
                self._failed(backend, exc)
                return
            except TimeoutError as exc:
                self._failed(backend, exc)
                await error_response(504, "Upstream server timed out")(scope, receive, send)
                return
            except aiohttp.ClientError as exc:
                self._failed(backend, exc)
                await error_response(502, "Upstream server failed")(scope, receive, send)
                return
            finally:
                backend.in_flight -= 1
        await error_response(503, "No backend server available", headers={"Retry-After": "1"})(
            scope, receive, send
        )

    @staticmethod
    def _failed(backend: Backend, exc: BaseException) -> None:
        backend.failures += 1
        backend.last_error = type(exc).__name__
        log.warning("backend %s failed: %s", backend.url, backend.last_error)

    @staticmethod
    def _log(scope: Scope, backend: Backend, status: int, started: float) -> None:
        log.info(
            "%s %s -> %s %d %.1fms",
            scope["method"],
            scope["path"],
            backend.url,
            status,
            (time.perf_counter() - started) * 1000,
        )


class BalancerMiddleware:
    """Hands every path that is not the balancer's own to the Balancer."""

    def __init__(self, app: ASGIApp, *, balancer: Balancer) -> None:
        self.app = app
        self.balancer = balancer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OWN_PATHS or is_docs_path(scope["path"]):
            await self.app(scope, receive, send)
        else:
            await self.balancer.handle(scope, receive, send)
