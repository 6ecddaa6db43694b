"""Monitoring app."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from svc_common.app import create_app, serve

from monitoring.config import MonitorSettings
from monitoring.poller import Poller
from monitoring.routes import STATIC_DIR, router


def build_app(settings: MonitorSettings | None = None) -> FastAPI:
    """The monitor for these settings (read from the environment by default)."""
    settings = settings or MonitorSettings()
    poller = Poller(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Poll for the life of the process."""
        await poller.start()
        yield
        await poller.close()

    app = create_app(
        settings,
        title="Monitoring",
        description="Polls every service's `/saude`; shows state, alerts and a live dashboard.",
        lifespan=lifespan,
        routers=[router],
    )
    app.state.poller = poller
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def run() -> None:
    """Console entry point."""
    serve("monitoring.main:build_app", MonitorSettings())
