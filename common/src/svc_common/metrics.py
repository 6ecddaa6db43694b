"""Prometheus metrics every service exports, and the /metrics route."""

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.responses import Response

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics(Collector):
    """http_requests_total and http_request_duration_seconds, counted in plain dicts and lists.

    prometheus_client's Counter and Histogram take a lock for every value they touch (three
    per request here); these series are only ever written on the event loop's thread (the
    middleware and the fast lane run there), so they need none and are rendered at scrape time.
    """

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.bounds = buckets
        self._le = [*map(floatToGoString, buckets), "+Inf"]
        self.requests: dict[tuple[str, str, int], int] = {}
        # Per (method, route): a count per bucket (the last one +Inf), then the sum.
        self.latency: dict[tuple[str, str], list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        key = (method, route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        series = self.latency.get((method, route))
        if series is None:
            series = self.latency[method, route] = [0] * (len(self.bounds) + 2)
        series[bisect_left(self.bounds, seconds)] += 1
        series[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        """The two families, as a Counter and a Histogram would expose them."""
        requests = CounterMetricFamily(
            "http_requests",
            "HTTP requests handled, by route template, method and status code.",
            labels=["method", "route", "status"],
        )
        for (method, route, status), count in list(self.requests.items()):
            requests.add_metric([method, route, str(status)], count)
        latency = HistogramMetricFamily(
            "http_request_duration_seconds",
            "Time from request start to the last response byte, by route template and method.",
            labels=["method", "route"],
        )
        for (method, route), series in list(self.latency.items()):
            counts = list(accumulate(series[:-1]))
            latency.add_metric(
                [method, route], list(zip(self._le, counts, strict=True)), series[-1]
            )
        yield requests
        yield latency


REQUEST_METRICS = RequestMetrics()
REGISTRY.register(REQUEST_METRICS)
observe = REQUEST_METRICS.observe


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
