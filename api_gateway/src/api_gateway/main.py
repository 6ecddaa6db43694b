"""API gateway app: auth endpoints, and the edge middleware and forwarding in front of them."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware
from svc_common.app import add_health_check, create_app, serve
from svc_common.auth import TokenVerifier
from svc_common.database import (
    create_engine,
    install_database_error_handler,
    migrate,
    ping,
    schema_lock,
    session_factory,
)
from svc_common.health import HealthCheck
from svc_common.revocation import RevocationList
from svc_common.serving.lane import LANE
from svc_common.settings import load_or_exit

from api_gateway.config import GatewaySettings, one_rate
from api_gateway.edge import EnvelopeCORSMiddleware, GzipWhenAccepted
from api_gateway.lane import GatewayLane
from api_gateway.openapi import MergedOpenAPI
from api_gateway.proxy import GatewayProxyMiddleware, Upstream
from api_gateway.ratelimit import RateLimiter
from api_gateway.ratelimit_asgi import RateLimitMiddleware
from api_gateway.routes import router
from api_gateway.users import ensure_accounts

MIGRATIONS = Path(__file__).parent / "migrations"


def _edge(settings: GatewaySettings) -> list[Middleware]:
    """Outermost first: CORS answers preflights before anything can refuse them."""
    stack = [Middleware(EnvelopeCORSMiddleware, origins=settings.cors_origins)]
    return stack if settings.cors_origins else []


def build_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway for these settings (read from the environment by default)."""
    settings = settings or GatewaySettings()
    verifier = TokenVerifier(
        settings.jwt_key,
        algorithms=(settings.jwt_algorithm,),
        revocations=RevocationList(settings.redis_url),
    )
    limiter = RateLimiter(
        {"default": one_rate(settings.rate_limit), "login": one_rate(settings.login_rate_limit)},
        settings.redis_url,
    )
    upstream = Upstream(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        """Open the user database and the balancer pool; create the start-up accounts."""
        engine = create_engine(settings)
        await migrate(engine, MIGRATIONS)
        app.state.sessions = session_factory(engine)
        # Separate from migrate(): the SQLite file lock cannot be taken twice in one process.
        async with schema_lock(engine):
            await ensure_accounts(app.state.sessions, settings)
        pool = upstream.start()
        lane = GatewayLane(settings, pool=pool, verifier=verifier, limiter=limiter)
        add_health_check(app, HealthCheck("database", lambda: ping(engine)))
        add_health_check(app, HealthCheck("rate_limits", limiter.ping, critical=False))
        yield {LANE: lane}
        await limiter.close()
        upstream.close()
        await engine.dispose()

    app = create_app(
        settings,
        title="API gateway",
        description=(
            "The public entry of the system. Log in with `POST /login` (or the Authorize "
            "button), then call `/itens`, forwarded through the load balancer to the servers. "
            f"Requests are limited to {settings.rate_limit} per user (per client IP without a "
            f"token) and login attempts to {settings.login_rate_limit} per client IP and username."
        ),
        lifespan=lifespan,
        routers=[router],
        middleware=[
            *_edge(settings),
            Middleware(GzipWhenAccepted, min_size=settings.gzip_min_bytes),
            Middleware(
                RateLimitMiddleware,
                limiter=limiter,
                verifier=verifier,
                proxies=settings.proxy_networks,
            ),
            Middleware(GatewayProxyMiddleware, upstream=upstream, verifier=verifier),
        ],
        token_verifier=verifier,
        openapi=MergedOpenAPI(settings.items_openapi_url),
    )
    app.state.rate_limiter = limiter
    install_database_error_handler(app)
    return app


def run() -> None:
    """Console entry point."""
    serve("api_gateway.main:build_app", load_or_exit(GatewaySettings))
