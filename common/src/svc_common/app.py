"""The app factory: every service gets the envelope, /saude, /metrics, /docs and request ids."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from starlette.middleware import Middleware
from starlette.types import Lifespan

from svc_common import tracing_setup
from svc_common.auth import TokenVerifier
from svc_common.docs import OpenAPIProvider, install_docs
from svc_common.envelope import install_error_handlers
from svc_common.health import HealthCheck, health_router
from svc_common.logging import configure_logging
from svc_common.metrics import metrics_router
from svc_common.middleware import RequestContextMiddleware
from svc_common.revocation import RevocationList
from svc_common.serving import tuning
from svc_common.serving.lane import LANE
from svc_common.serving.protocol import LaneProtocol
from svc_common.settings import AuthSettings, ServiceSettings

KEEP_ALIVE_SECONDS = 75


def create_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    lifespan: Lifespan[Any] | None = None,
    routers: Sequence[APIRouter] = (),
    middleware: Sequence[Middleware] = (),
    served_by: bool = False,
    version: str = "0.1.0",
    token_verifier: TokenVerifier | None = None,
    openapi: OpenAPIProvider | None = None,
) -> FastAPI:
    """A FastAPI app wired the same way in every service.

    A service with AuthSettings gets `app.state.token_verifier`, which honours revocations
    (shared through REDIS_URL when set); pass `token_verifier` to use one built already.
    """
    configure_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    tracing_setup.configure(settings.service_name)
    tuning.fixed_mmap_threshold()
    if token_verifier is None and isinstance(settings, AuthSettings):
        token_verifier = TokenVerifier(
            settings.jwt_key, revocations=RevocationList(settings.redis_url)
        )
    if token_verifier is not None:
        lifespan = _following_revocations(token_verifier.revocations, lifespan)
    lifespan = _after_startup(lifespan, lane=settings.fast_lane)
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # Our spans are the lane's and the ASGI path's alike (svc_common.tracing); FastAPI's
        # own would add a second server span per request, on the ASGI path only.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.health_checks = []
    app.state.token_verifier = token_verifier
    install_error_handlers(app)
    install_docs(app, openapi=openapi)
    app.include_router(health_router(settings.service_name))
    app.include_router(metrics_router)
    for router in routers:
        app.include_router(router)
    # Starlette puts the last added middleware outermost: service middleware runs inside ours.
    for item in reversed(middleware):
        app.add_middleware(item.cls, *item.args, **item.kwargs)
    app.add_middleware(
        RequestContextMiddleware,
        served_by=settings.service_name if served_by else None,
        access_log=settings.access_log,
    )
    return app


def _following_revocations(
    revocations: RevocationList, inner: Lifespan[Any] | None
) -> Lifespan[Any]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        await revocations.start()
        try:
            if inner is None:
                yield None
            else:
                async with inner(app) as state:
                    yield state
        finally:
            await revocations.close()

    return lifespan


def _after_startup(inner: Lifespan[Any] | None, *, lane: bool) -> Lifespan[Any]:
    # Migrations, schema building and the default users' password hashes leave megabytes of
    # freed heap behind; at rest a service should hold only what it uses. FAST_LANE=false
    # leaves the lane handler out of the state, so every request takes the ASGI path.
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        if inner is None:
            tuning.started()
            yield None
        else:
            async with inner(app) as state:
                tuning.started()
                if not lane and isinstance(state, dict):
                    yield {key: value for key, value in state.items() if key != LANE}
                else:
                    yield state

    return lifespan


def add_health_check(app: FastAPI, check: HealthCheck) -> None:
    """Make /saude report one more dependency (called from a lifespan)."""
    app.state.health_checks.append(check)


def serve(factory_path: str, settings: ServiceSettings) -> None:
    """Run one service under uvicorn (uvloop, httptools) from its app factory."""
    tuning.whole_process()
    tuning.open_file_limit(settings.max_connections)
    uvicorn.run(
        factory_path,
        factory=True,
        host=settings.host,
        port=settings.porta,
        loop="uvloop",
        # httptools, one write per response, and the fast lane for a service that has one.
        http=LaneProtocol.configured(
            read_timeout=settings.read_timeout, max_connections=settings.max_connections
        ),
        log_config=None,
        access_log=False,
        server_header=False,
        # Longer than any client's idle expiry (httpx 5 s, aiohttp 15 s, nginx 60 s), so the
        # client closes an idle connection first; with uvicorn's 5 s a request sent just as the
        # server gives up on the connection fails with no response (nginx keeps 75 s too).
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        # The gateway decides itself which proxies it trusts (TRUSTED_PROXIES).
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
