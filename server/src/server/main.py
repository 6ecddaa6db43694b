"""Item server app: wiring of config, database, item cache, auth and routes."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from svc_common.app import add_health_check, create_app, serve
from svc_common.database import (
    create_engine,
    install_database_error_handler,
    migrate,
    ping,
    session_factory,
)
from svc_common.health import HealthCheck
from svc_common.serving.lane import LANE
from svc_common.settings import load_or_exit

from server.cache import ItemCache
from server.config import ServerSettings
from server.identity import router as identity_router
from server.lane import ItemReadLane
from server.routes import router

MIGRATIONS = Path(__file__).parent / "migrations"


def _redis(settings: ServerSettings) -> Redis | None:
    if not settings.redis_url:
        return None
    # One quick retry covers a pooled connection Redis dropped; longer outages go to the DB.
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        retry=Retry(NoBackoff(), 1),
    )


def build_app(settings: ServerSettings | None = None) -> FastAPI:
    """The item server for these settings (read from the environment by default)."""
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        """Migrate the schema (one instance at a time), open the pool and the item cache."""
        engine = create_engine(settings)
        await migrate(engine, MIGRATIONS)
        app.state.sessions = session_factory(engine)
        add_health_check(app, HealthCheck("database", lambda: ping(engine)))
        redis = _redis(settings)
        cache = ItemCache(redis, ttl=settings.item_cache_ttl, jitter=settings.item_cache_jitter)
        app.state.item_cache = cache
        if redis is not None:
            add_health_check(app, HealthCheck("redis", cache.ping, critical=False))
        replay = asyncio.create_task(cache.replay_forever())
        yield {
            LANE: ItemReadLane(
                verifier=app.state.token_verifier,
                cache=cache,
                sessions=app.state.sessions,
                served_by=settings.service_name,
                access_log=settings.access_log,
            )
        }
        replay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await replay
        if redis is not None:
            await redis.aclose()
        await engine.dispose()

    app = create_app(
        settings,
        title=f"Item server ({settings.service_name})",
        description="CRUD of items on `/itens`. Every call needs a bearer token from the gateway.",
        lifespan=lifespan,
        routers=[router, identity_router],
        served_by=True,
    )
    install_database_error_handler(app)
    return app


def run() -> None:
    """Console entry point."""
    serve("server.main:build_app", load_or_exit(ServerSettings))
