"""GET /saude: liveness plus the state of what the service depends on; /livez and /readyz for
orchestrators (the process answers; it can serve and is not shutting down)."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from svc_common.envelope import Envelope, EnvelopeResponse

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0


class _Draining:
    """Set once the server has begun to shut down (SIGTERM): /readyz says not ready from then."""

    now = False


def mark_draining() -> None:
    """The server is shutting down (svc_common.serving.protocol calls this)."""
    _Draining.now = True


@dataclass(frozen=True)
class HealthCheck:
    """A named probe; it raises (or times out) when the dependency is unusable."""

    name: str
    probe: Callable[[], Awaitable[Any]]
    critical: bool = True


class CheckFailed(Exception):
    """Raised by a probe whose dependency is unusable, with the details /saude should show."""

    def __init__(self, detail: Any) -> None:
        super().__init__("health check failed")
        self.detail = detail


class HealthReport(BaseModel):
    """What /saude reports."""

    service: str
    status: str
    uptime_seconds: float
    checks: dict[str, Any]


async def _run(check: HealthCheck) -> tuple[str, bool, Any]:
    try:
        detail = await asyncio.wait_for(check.probe(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return check.name, False, {"status": "down", "error": "timeout"}
    except CheckFailed as exc:
        return check.name, False, exc.detail
    except Exception as exc:
        log.warning("health check %s failed: %s", check.name, exc)
        return check.name, False, {"status": "down", "error": type(exc).__name__}
    return check.name, True, detail if detail is not None else {"status": "up"}


def health_router(service: str) -> APIRouter:
    """/saude over app.state.health_checks; 503 when a critical one fails."""
    router = APIRouter(tags=["observability"])
    started = time.monotonic()

    @router.get(
        "/saude",
        summary="Health check",
        response_model=Envelope[HealthReport],
        responses={503: {"model": Envelope[HealthReport], "description": "A dependency is down"}},
    )
    async def saude(request: Request) -> Response:
        """Liveness of this service and the state of its dependencies."""
        checks: list[HealthCheck] = request.app.state.health_checks
        results = await asyncio.gather(*(_run(c) for c in checks))
        critical_down = any(
            not ok and check.critical for check, (_, ok, _) in zip(checks, results, strict=True)
        )
        degraded = any(not ok for _, ok, _ in results)
        state = "down" if critical_down else "degraded" if degraded else "ok"
        report = HealthReport(
            service=service,
            status=state,
            uptime_seconds=round(time.monotonic() - started, 1),
            checks={name: detail for name, _, detail in results},
        )
        body = {
            "status": "error" if critical_down else "success",
            "data": report.model_dump(mode="json"),
            "message": f"{service} is {state}",
        }
        return EnvelopeResponse(body, status_code=503 if critical_down else 200)

    @router.get("/livez", summary="Liveness: the process answers")
    async def livez() -> Envelope[dict[str, str]]:
        """Always 200 while the process serves requests (what a liveness probe asks)."""
        return Envelope(data={"service": service, "status": "alive"})

    @router.get(
        "/readyz",
        summary="Readiness: critical dependencies up, not shutting down",
        responses={503: {"model": Envelope[dict[str, Any]], "description": "Not ready"}},
    )
    async def readyz(request: Request) -> Response:
        """200 when every critical dependency answers and no shutdown has begun; else 503."""
        checks = [c for c in request.app.state.health_checks if c.critical]
        results = await asyncio.gather(*(_run(c) for c in checks))
        down = {name: detail for name, ok, detail in results if not ok}
        reason = "shutting down" if _Draining.now else "dependencies down" if down else ""
        body = {
            "status": "error" if reason else "success",
            "data": {"service": service, "ready": not reason, "down": down},
            "message": f"{service} is not ready: {reason}" if reason else f"{service} is ready",
        }
        return EnvelopeResponse(body, status_code=503 if reason else 200)

    return router
