"""/health, /stats, /alerts and /dashboard."""

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from svc_common.envelope import Envelope

from monitoring.alerts import AlertEngine
from monitoring.poller import Poller
from monitoring.schemas import (
    AlertEvent,
    AlertOut,
    BalancerSplit,
    CacheRatio,
    History,
    InstanceTraffic,
    Overview,
    RuleOut,
    ServiceHealth,
    ServiceTraffic,
    Stats,
)

STATIC_DIR = Path(__file__).parent / "static"
router = APIRouter(tags=["monitoring"])


def get_poller(request: Request) -> Poller:
    """The poller started in the lifespan."""
    poller: Poller = request.app.state.poller
    return poller


def get_alerts(request: Request) -> AlertEngine:
    """The alert engine fed by the poller."""
    engine: AlertEngine = request.app.state.alerts
    return engine


PollerDep = Annotated[Poller, Depends(get_poller)]
AlertsDep = Annotated[AlertEngine, Depends(get_alerts)]


@router.get("/health", summary="State of every service")
async def health(poller: PollerDep) -> Envelope[Overview]:
    """Up/down, probe latency and uptime over the window for each service and instance."""
    services = [ServiceHealth.model_validate(s.snapshot()) for s in poller.services.values()]
    down = [s.name for s in services if s.status == "down"]
    degraded = [
        f"{s.name} ({sum(i.status == 'up' for i in s.instances)} of {len(s.instances)} up)"
        for s in services
        if s.status == "degraded"
    ]
    problems = [
        f"{word}: {', '.join(names)}"
        for word, names in (("down", down), ("degraded", degraded))
        if names
    ]
    return Envelope(
        data=Overview(status="degraded" if problems else "ok", services=services),
        message="; ".join(problems) or "all services up",
    )


@router.get("/stats", summary="Traffic, balancer split and cache hit ratio")
async def stats(poller: PollerDep) -> Envelope[Stats]:
    """Request rate, error ratio and p50/p95/p99 per service over RATE_WINDOW, from /metrics."""
    services = [
        ServiceTraffic.model_validate(
            {"name": name, "scrape_error": poller.services[name].scrape_error}
            | traffic
            | {"instances": _instances(poller, name)}
        )
        for name, traffic in poller.traffic.items()
    ]
    return Envelope(
        data=Stats(
            window_seconds=poller.settings.rate_window,
            services=services,
            balancer=BalancerSplit.model_validate(poller.balancer()),
            cache=CacheRatio.model_validate(poller.cache()),
        )
    )


def _instances(poller: Poller, name: str) -> list[InstanceTraffic]:
    return [
        InstanceTraffic.model_validate(
            {"instance": t.instance, "scrape_error": t.scrape_error} | t.traffic()
        )
        for t in poller.services[name].instances.values()
    ]


@router.get("/stats/history", summary="Chart points")
async def history(
    poller: PollerDep,
    since: Annotated[float | None, Query(description="Only points newer than this epoch")] = None,
) -> Envelope[History]:
    """One point per poll over CHART_WINDOW; pass the last `t` seen as `since` for the rest."""
    return Envelope(data=History.model_validate(poller.series.since(since)))


@router.get("/alerts", summary="Active alerts")
async def alerts(
    engine: AlertsDep,
    state: Annotated[Literal["pending", "firing"] | None, Query()] = None,
) -> Envelope[list[AlertOut]]:
    """Pending and firing alerts, firing first; `state` narrows to one of them."""
    active = [AlertOut.model_validate(a.to_dict()) for a in engine.alerts(state)]
    firing = sum(a.state == "firing" for a in active)
    return Envelope(data=active, message=f"{firing} firing, {len(active) - firing} pending")


@router.get("/alerts/history", summary="Alert state changes")
async def alert_history(
    engine: AlertsDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Envelope[list[AlertEvent]]:
    """The latest transitions (pending, firing, resolved, inactive), newest first."""
    events = list(engine.history)[-limit:][::-1]
    return Envelope(data=[AlertEvent.model_validate(e) for e in events])


@router.get("/alerts/rules", summary="Alert rules")
async def alert_rules(engine: AlertsDep) -> Envelope[list[RuleOut]]:
    """Every rule with its threshold and `for` duration, as configured."""
    return Envelope(data=[RuleOut.model_validate(r.describe()) for r in engine.rules])


@router.get("/dashboard", summary="Live dashboard (HTML)", response_class=FileResponse)
async def dashboard() -> FileResponse:
    """A page that refreshes itself from /health, /stats, /stats/history and /alerts."""
    return FileResponse(STATIC_DIR / "dashboard.html", media_type="text/html")
