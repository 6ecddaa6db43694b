"""Monitoring app."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from svc_common.app import create_app, serve
from svc_common.settings import load_or_exit

from monitoring.alerts import AlertEngine
from monitoring.config import MonitorSettings
from monitoring.notify import WebhookNotifier
from monitoring.poller import Poller
from monitoring.routes import STATIC_DIR, router
from monitoring.rules import default_rules


def build_app(settings: MonitorSettings | None = None) -> FastAPI:
    """The monitor for these settings (read from the environment by default)."""
    settings = settings or MonitorSettings()
    poller = Poller(settings)
    notifier = (
        WebhookNotifier(
            str(settings.alert_webhook_url),
            retries=settings.alert_webhook_retries,
            timeout=settings.alert_webhook_timeout,
            backoff=settings.alert_webhook_backoff,
            external_url=settings.external_url.rstrip("/")
            or f"http://{settings.host}:{settings.porta}",
        )
        if settings.alert_webhook_url
        else None
    )
    engine = AlertEngine(
        default_rules(settings),
        history=settings.alert_history,
        notify=notifier,
        repeat_interval=settings.alert_repeat_interval,
    )
    poller.after_cycle.append(lambda: engine.evaluate(poller))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Poll (and notify) for the life of the process."""
        if notifier is not None:
            await notifier.start()
        await poller.start()
        yield
        await poller.close()
        if notifier is not None:
            await notifier.close()

    app = create_app(
        settings,
        title="Monitoring",
        description=(
            "Polls every service's `/saude` and scrapes its `/metrics`; derives traffic, "
            "evaluates alert rules and serves a live dashboard."
        ),
        lifespan=lifespan,
        routers=[router],
    )
    app.state.poller = poller
    app.state.alerts = engine
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def run() -> None:
    """Console entry point."""
    serve("monitoring.main:build_app", load_or_exit(MonitorSettings))
