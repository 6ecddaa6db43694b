"""Shapes of what the monitor's JSON endpoints return."""

from typing import Literal

from pydantic import BaseModel, Field

State = Literal["up", "down", "unknown"]


class InstanceHealth(BaseModel):
    """One instance (an address the service's host name resolves to) as the last probe saw it."""

    instance: str = Field(description="host:port probed, as Prometheus's `instance` label")
    url: str
    status: State
    latency_ms: float | None = Field(description="Duration of the last /saude probe")
    uptime_percent: float | None = Field(description="Share of good probes over UPTIME_WINDOW")
    error: str | None
    checked_at: float | None
    since: float = Field(description="When the current status began (epoch seconds)")


class ServiceHealth(BaseModel):
    """One target (MONITOR_TARGETS entry) and its instances; one instance unless its host name
    resolves to several addresses."""

    name: str
    url: str
    status: Literal["up", "degraded", "down", "unknown"] = Field(
        description="up: every probed instance answers; down: none does; degraded: some do"
    )
    latency_ms: float | None = Field(description="Last /saude probe of the slowest instance")
    uptime_percent: float | None = Field(
        description="Share of good probes over UPTIME_WINDOW, all instances together"
    )
    error: str | None
    checked_at: float | None
    since: float = Field(description="When the current status began (epoch seconds)")
    instances: list[InstanceHealth]


class Overview(BaseModel):
    """Every service's state."""

    status: Literal["ok", "degraded"]
    services: list[ServiceHealth]


class Traffic(BaseModel):
    """Rates and quantiles over RATE_WINDOW, from /metrics."""

    request_rate: float | None = Field(description="Requests per second")
    error_ratio: float | None = Field(description="Share of requests answered with 5xx")
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    scrape_error: str | None


class InstanceTraffic(Traffic):
    """One instance's traffic."""

    instance: str


class ServiceTraffic(Traffic):
    """The service's traffic: its instances' summed (rates) and pooled (quantiles)."""

    name: str
    instances: list[InstanceTraffic]


class BackendShare(BaseModel):
    """One backend of the balancer."""

    backend: str
    name: str | None = Field(description="The monitored target at that URL, if any")
    state: str | None = Field(description="As the balancer reports it: up, down, ejected...")
    requests_total: float | None
    request_rate: float
    share: float | None = Field(description="Fraction of the balancer's requests over the window")


class BalancerSplit(BaseModel):
    """How the balancer spreads requests; `source` says where it was read."""

    target: str
    source: Literal["metrics", "status"] | None
    backends: list[BackendShare]


class CacheRatio(BaseModel):
    """Cache hit ratio over the window, summed over every service that counts lookups."""

    target: str = Field(description="The service LowCacheHitRatio names (CACHE_TARGET)")
    sources: list[str] = Field(description="Services counted, and how: metrics or http")
    hit_ratio: float | None
    lookup_rate: float | None


class Stats(BaseModel):
    """What the dashboard charts, as of the last poll."""

    window_seconds: float
    services: list[ServiceTraffic]
    balancer: BalancerSplit
    cache: CacheRatio


class History(BaseModel):
    """Chart points newer than `since`, one column per series."""

    window_seconds: float = Field(description="How far back the charts go (CHART_WINDOW)")
    t: list[float]
    services: dict[str, dict[str, list[float | None]]]
    cache_hit_ratio: list[float | None]


class AlertOut(BaseModel):
    """An alert that is pending or firing."""

    name: str
    service: str | None
    labels: dict[str, str]
    severity: str
    state: Literal["pending", "firing", "resolved"]
    summary: str
    value: float | None
    active_at: float
    fired_at: float | None
    resolved_at: float | None
    since: float
    fingerprint: str


class AlertEvent(BaseModel):
    """One state change of an alert."""

    at: float
    name: str
    labels: dict[str, str]
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    summary: str
    value: float | None
    fingerprint: str


class RuleOut(BaseModel):
    """An alert rule with its configured threshold and `for` duration."""

    name: str
    severity: str
    for_seconds: float
    expr: str
