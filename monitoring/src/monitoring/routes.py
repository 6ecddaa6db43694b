"""/health, /alerts and /dashboard."""

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from svc_common.envelope import Envelope

from monitoring.poller import Poller

STATIC_DIR = Path(__file__).parent / "static"
router = APIRouter(tags=["monitoring"])


class Overview(BaseModel):
    """Every service's state."""

    status: str
    services: list[dict[str, Any]]


class Alert(BaseModel):
    """A condition that needs a human."""

    name: str
    service: str
    severity: str
    state: str
    since: float
    summary: str


def _poller(request: Request) -> Poller:
    poller: Poller = request.app.state.poller
    return poller


@router.get("/health", summary="State of every service")
async def health(request: Request) -> Envelope[Overview]:
    """Up/down, probe latency and uptime over the window for each target."""
    services = [t.snapshot() for t in _poller(request).targets.values()]
    down = [s["name"] for s in services if s["status"] == "down"]
    return Envelope(
        data=Overview(status="degraded" if down else "ok", services=services),
        message=f"down: {', '.join(map(str, down))}" if down else "all services up",
    )


@router.get("/alerts", summary="Active alerts")
async def alerts(request: Request) -> Envelope[list[Alert]]:
    """One firing ServiceDown alert per service whose health check fails."""
    active = [
        Alert(
            name="ServiceDown",
            service=t.name,
            severity="critical",
            state="firing",
            since=t.since,
            summary=f"{t.name} is not answering /saude ({t.error})",
        )
        for t in _poller(request).targets.values()
        if t.up is False
    ]
    return Envelope(data=active, message=f"{len(active)} active alert(s)")


@router.get("/dashboard", summary="Live dashboard (HTML)", response_class=FileResponse)
async def dashboard() -> FileResponse:
    """A page that refreshes itself from /health and /alerts."""
    return FileResponse(STATIC_DIR / "dashboard.html", media_type="text/html")
