"""Prometheus metrics every service exports, and the /metrics route."""

import hmac
from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.responses import Response

from svc_common.envelope import ErrorEnvelope

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        """Add one."""
        self.value += 1


class _Buckets:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one value in its bucket."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class LoopCounter(Collector):
    """A labelled counter kept in plain attributes, rendered at scrape time.

    prometheus_client's Counter and Histogram take a lock for every value they touch; series
    that only the event loop's thread writes (the middleware, the fast lane, the balancer's
    tries) need none. A scrape on another thread may see one request counted in one series
    and not yet in its sibling, as with prometheus_client's per-value locks.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: list[str],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self.series: dict[tuple[str, ...], _Count] = {}
        registry.register(self)

    def labels(self, *values: str) -> _Count:
        """The series of these label values (made on first use)."""
        return self.series.get(values) or self.series.setdefault(values, _Count())

    def remove(self, *values: str) -> None:
        """Forget a series."""
        self.series.pop(values, None)

    def collect(self) -> Iterator[Metric]:
        """The family as a Counter exposes it."""
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, count in list(self.series.items()):
            family.add_metric(list(values), count.value)
        yield family


class LoopHistogram(Collector):
    """A labelled histogram kept in plain lists, rendered at scrape time (see LoopCounter)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: list[str],
        buckets: tuple[float, ...] = BUCKETS,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self.bounds = buckets
        self._le = [*map(floatToGoString, buckets), "+Inf"]
        self.series: dict[tuple[str, ...], _Buckets] = {}
        registry.register(self)

    def labels(self, *values: str) -> _Buckets:
        """The series of these label values (made on first use)."""
        return self.series.get(values) or self.series.setdefault(values, _Buckets(self.bounds))

    def remove(self, *values: str) -> None:
        """Forget a series."""
        self.series.pop(values, None)

    def collect(self) -> Iterator[Metric]:
        """The family as a Histogram exposes it: cumulative buckets, count and sum."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in list(self.series.items()):
            cumulative = zip(self._le, accumulate(series.counts), strict=True)
            family.add_metric(list(values), list(cumulative), series.sum)
        yield family


REQUESTS = LoopCounter(
    "http_requests",
    "HTTP requests handled, by route template, method and status code.",
    ["method", "route", "status"],
)
LATENCY = LoopHistogram(
    "http_request_duration_seconds",
    "Time from request start to the last response byte, by route template and method.",
    ["method", "route"],
)
# The series of each (method, route, status), looked up once.
_children: dict[tuple[str, str, int], tuple[_Count, _Buckets]] = {}


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


def scraper_allowed(request: Request) -> None:
    """METRICS_TOKEN, when set, as `Authorization: Bearer ...`; without one, /metrics is open
    where the service allows it (not on the gateway's public port outside dev mode)."""
    settings = request.app.state.settings
    token = settings.metrics_token
    if token is None:
        if not settings.metrics_open:
            raise HTTPException(404, "Not Found")
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise HTTPException(
            401, "Metrics need the METRICS_TOKEN", headers={"WWW-Authenticate": "Bearer"}
        )


metrics_router = APIRouter(tags=["observability"])


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics (Bearer METRICS_TOKEN when set)",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        401: {"model": ErrorEnvelope, "description": "METRICS_TOKEN is set: send it"},
        404: {"model": ErrorEnvelope, "description": "Not on this port (the gateway, in prod)"},
    },
)
def metrics(_: Annotated[None, Depends(scraper_allowed)]) -> Response:
    """Prometheus text exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
