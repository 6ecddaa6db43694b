"""Prometheus metrics every service exports, and the /metrics route."""

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.responses import Response

REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests handled, by route template, method and status code.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from request start to the last response byte, by route template and method.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


# Labelled children by (method, route, status): the label sets are bounded (route templates),
# and .labels() costs a lock and a tuple hash per call, so each is looked up once.
_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe(method: str, route: str, status: int, seconds: float) -> None:
    """Count one finished request."""
    key = (method, route, status)
    pair = _children.get(key)
    if pair is None:
        pair = _children[key] = (
            REQUESTS.labels(method, route, str(status)),
            LATENCY.labels(method, route),
        )
    pair[0].inc()
    pair[1].observe(seconds)


metrics_router = APIRouter(tags=["observability"])


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}
    },
)
def metrics() -> Response:
    """Prometheus text exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
