"""The app factory: every service gets the envelope, /saude, /metrics, /docs and request ids."""

import ctypes
import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from starlette.middleware import Middleware
from starlette.types import Lifespan

from svc_common.auth import TokenVerifier
from svc_common.docs import OpenAPIProvider, install_docs
from svc_common.envelope import install_error_handlers
from svc_common.health import HealthCheck, health_router
from svc_common.lane_protocol import FastLaneProtocol
from svc_common.logging import configure_logging
from svc_common.metrics import metrics_router
from svc_common.middleware import RequestContextMiddleware
from svc_common.revocation import RevocationList
from svc_common.settings import AuthSettings, ServiceSettings

KEEP_ALIVE_SECONDS = 75
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
# Tracked allocations between young collections (CPython's default: 700).
YOUNG_GC_THRESHOLD = 10_000
# Set by serve(): the app lives as long as the process, so what start-up built may be frozen
# (an app made by a test goes away with the test, and must stay collectable).
_whole_process = False


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
    fixed_mmap_threshold()
    if token_verifier is None and isinstance(settings, AuthSettings):
        token_verifier = TokenVerifier(
            settings.jwt_key, revocations=RevocationList(settings.redis_url)
        )
    if token_verifier is not None:
        lifespan = _following_revocations(token_verifier.revocations, lifespan)
    lifespan = _trimming_after_startup(lifespan)
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
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


def _glibc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: its tuning does not apply
        return None


def fixed_mmap_threshold() -> None:
    """Blocks over 256 KiB come from, and go straight back to, the OS.

    glibc raises its mmap threshold after a big block is freed, so the next one lands in
    the heap and stays there: each worker thread that hashed a password (argon2 takes
    19 MiB) would keep 19 MiB for the rest of the process. A fixed threshold stops that.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)


def release_free_memory() -> None:
    """Hand the heap that start-up used and freed back to the OS (glibc keeps it otherwise)."""
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def settle_garbage_collector() -> None:
    """Leave what start-up built out of every later collection, and collect young objects
    less often.

    A full collection walks every tracked object: under load the balancer ran one every few
    seconds over the ~75,000 objects of its modules, app and schemas, a 40 ms pause each
    time with every request in flight waiting behind it. Frozen, they are skipped (1 ms).
    Objects of a request in flight survive a young collection at gen-0's 700 allocations,
    which a proxy reaches every few dozen requests; at YOUNG_GC_THRESHOLD most are freed by
    reference counting before one runs.
    """
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)


def _started() -> None:
    release_free_memory()
    if _whole_process:
        settle_garbage_collector()


def _trimming_after_startup(inner: Lifespan[Any] | None) -> Lifespan[Any]:
    # Migrations, schema building and the default users' password hashes leave megabytes of
    # freed heap behind; at rest a service should hold only what it uses.
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        if inner is None:
            _started()
            yield None
        else:
            async with inner(app) as state:
                _started()
                yield state

    return lifespan


def add_health_check(app: FastAPI, check: HealthCheck) -> None:
    """Make /saude report one more dependency (called from a lifespan)."""
    app.state.health_checks.append(check)


def serve(factory_path: str, settings: ServiceSettings) -> None:
    """Run one service under uvicorn (uvloop, httptools) from its app factory."""
    global _whole_process  # noqa: PLW0603 - one switch, set once per process
    _whole_process = True
    uvicorn.run(
        factory_path,
        factory=True,
        host=settings.host,
        port=settings.porta,
        loop="uvloop",
        # httptools, one write per response, and the fast lane for a service that has one.
        http=FastLaneProtocol,
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
