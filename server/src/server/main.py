"""Item server app: wiring of config, database, auth and routes."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from svc_common.app import add_health_check, create_app, serve
from svc_common.database import (
    create_engine,
    install_database_error_handler,
    ping,
    schema_lock,
    session_factory,
)
from svc_common.health import HealthCheck

from server.config import ServerSettings
from server.models import Base
from server.routes import router


def build_app(settings: ServerSettings | None = None) -> FastAPI:
    """The item server for these settings (read from the environment by default)."""
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Open the pool and make sure the schema exists before taking traffic."""
        engine = create_engine(settings)
        async with schema_lock(engine), engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        app.state.sessions = session_factory(engine)
        add_health_check(app, HealthCheck("database", lambda: ping(engine)))
        yield
        await engine.dispose()

    app = create_app(
        settings,
        title=f"Item server ({settings.service_name})",
        description="CRUD of items on `/itens`. Every call needs a bearer token from the gateway.",
        lifespan=lifespan,
        routers=[router],
        served_by=True,
    )
    install_database_error_handler(app)
    return app


def run() -> None:
    """Console entry point."""
    serve("server.main:build_app", ServerSettings())
