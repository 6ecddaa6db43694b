"""Load balancer app: its own endpoints plus the forwarding middleware."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from starlette.middleware import Middleware
from svc_common.app import add_health_check, create_app, serve
from svc_common.envelope import Envelope
from svc_common.health import CheckFailed, HealthCheck
from svc_common.serving.lane import LANE
from svc_common.settings import load_or_exit

from load_balancer.backends import SERVING
from load_balancer.config import BalancerSettings
from load_balancer.health import HealthChecker
from load_balancer.lane import BalancerLane
from load_balancer.proxy import Balancer, BalancerMiddleware

router = APIRouter(tags=["balancer"])


class Latency(BaseModel):
    """Percentiles over the backend's last 1024 answers, in milliseconds."""

    p50: float | None
    p95: float | None


class BackendStatus(BaseModel):
    """One backend as the balancer sees it."""

    name: str
    url: str
    origin: str
    state: str
    healthy: bool
    in_flight: int
    requests: int
    failures: int
    ejections: int
    latency_ms: Latency
    last_error: str | None
    last_check_error: str | None


class BalancerStatus(BaseModel):
    """The strategy, the backends, and SERVIDORES names that do not resolve."""

    strategy: str
    health_interval: float
    backends: list[BackendStatus]
    unresolved: dict[str, str]


@router.get("/status", summary="Per-backend state and statistics")
async def status(request: Request) -> Envelope[BalancerStatus]:
    """State, in-flight, requests, failures, ejections and p50/p95 latency of every backend."""
    balancer: Balancer = request.app.state.balancer
    checker: HealthChecker = request.app.state.health_checker
    report = BalancerStatus(
        strategy=balancer.settings.balance_strategy,
        health_interval=balancer.settings.health_interval,
        backends=[BackendStatus.model_validate(b.snapshot()) for b in balancer.pool.backends],
        unresolved=checker.unresolved,
    )
    return Envelope(data=report)


def build_app(settings: BalancerSettings | None = None) -> FastAPI:
    """The balancer for these settings (read from the environment by default)."""
    settings = settings or BalancerSettings()
    balancer = Balancer(settings)
    checker = HealthChecker(settings, balancer.pool)

    async def backends() -> dict[str, Any]:
        """Each backend's state; degraded while any is not taking traffic."""
        states = [
            {"name": b.name, "state": b.state, "in_flight": b.in_flight}
            for b in balancer.pool.backends
        ]
        serving = sum(1 for s in states if s["state"] in SERVING)
        if serving and serving == len(states) and not checker.unresolved:
            return {"status": "up", "backends": states}
        detail = {
            "status": "degraded" if serving else "down",
            "backends": states,
            "unresolved": checker.unresolved,
        }
        raise CheckFailed(detail)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        """Open the upstream session and start the health checks for the life of the process."""
        await checker.start()
        # Not critical: the balancer itself is alive and answers 503s quickly on its own.
        add_health_check(app, HealthCheck("backends", backends, critical=False))
        yield {LANE: BalancerLane(balancer)}
        await checker.close()
        balancer.close()

    app = create_app(
        settings,
        title="Load balancer",
        description=(
            "Spreads requests over `SERVIDORES` (round-robin or least-connections), checks "
            "each backend's health, and retries on another backend when that is safe. Every "
            "path other than the ones listed here is forwarded to a backend server."
        ),
        lifespan=lifespan,
        routers=[router],
        middleware=[Middleware(BalancerMiddleware, balancer=balancer)],
    )
    app.state.balancer = balancer
    app.state.health_checker = checker
    return app


def run() -> None:
    """Console entry point."""
    serve("load_balancer.main:build_app", load_or_exit(BalancerSettings))
