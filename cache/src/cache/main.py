"""Cache service app."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.responses import Response
from svc_common.app import add_health_check, create_app, serve
from svc_common.envelope import error_response
from svc_common.health import HealthCheck
from svc_common.settings import load_or_exit

from cache.config import CacheSettings
from cache.routes import router
from cache.store import MemoryStore, RedisStore, Store

log = logging.getLogger(__name__)


async def _redis_down(request: Request, exc: Exception) -> Response:
    log.warning("redis unavailable on %s: %s", request.url.path, exc)
    return error_response(503, "Cache backend unavailable", headers={"Retry-After": "1"})


def build_app(settings: CacheSettings | None = None) -> FastAPI:
    """The cache service for these settings (read from the environment by default)."""
    settings = settings or CacheSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Connect to Redis (or start the in-process store)."""
        store: Store = RedisStore(settings.redis_url) if settings.redis_url else MemoryStore()
        app.state.store = store
        add_health_check(app, HealthCheck(store.backend, store.ping))
        yield
        await store.close()

    app = create_app(
        settings,
        title="Cache",
        description="Key/value cache with TTL over Redis. Every call needs a bearer token.",
        lifespan=lifespan,
        routers=[router],
    )
    app.add_exception_handler(RedisConnectionError, _redis_down)
    app.add_exception_handler(RedisTimeoutError, _redis_down)
    return app


def run() -> None:
    """Console entry point."""
    serve("cache.main:build_app", load_or_exit(CacheSettings))
