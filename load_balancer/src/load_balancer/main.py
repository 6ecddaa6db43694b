"""Load balancer app: its own endpoints plus the forwarding middleware."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.middleware import Middleware
from svc_common.app import add_health_check, create_app, serve
from svc_common.envelope import Envelope
from svc_common.health import HealthCheck

from load_balancer.config import BalancerSettings
from load_balancer.proxy import Balancer, BalancerMiddleware

router = APIRouter(tags=["balancer"])


@router.get("/status", summary="Per-backend statistics")
async def status(request: Request) -> Envelope[list[dict[str, Any]]]:
    """Requests, failures and in-flight count of every backend."""
    balancer: Balancer = request.app.state.balancer
    return Envelope(data=[b.snapshot() for b in balancer.pool.backends])


def build_app(settings: BalancerSettings | None = None) -> FastAPI:
    """The balancer for these settings (read from the environment by default)."""
    settings = settings or BalancerSettings()
    balancer = Balancer(settings)

    async def backends() -> dict[str, Any]:
        return {"status": "up", "backends": [b.snapshot() for b in balancer.pool.backends]}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Open the shared upstream session for the life of the process."""
        await balancer.start()
        add_health_check(app, HealthCheck("backends", backends, critical=False))
        yield
        await balancer.close()

    app = create_app(
        settings,
        title="Load balancer",
        description=(
            "Round-robin over `SERVIDORES`. Every path other than the ones listed here is "
            "forwarded to a backend server."
        ),
        lifespan=lifespan,
        routers=[router],
        middleware=[Middleware(BalancerMiddleware, balancer=balancer)],
    )
    app.state.balancer = balancer
    return app


def run() -> None:
    """Console entry point."""
    serve("load_balancer.main:build_app", BalancerSettings())
