"""Configuration of the monitor."""

from typing import Annotated, Any

from pydantic import AnyHttpUrl, Field, field_validator
from pydantic_settings import NoDecode
from svc_common.settings import ServiceSettings

DEFAULT_TARGETS = {
    "api_gateway": "http://127.0.0.1:8000",
    "load_balancer": "http://127.0.0.1:8001",
    "server": "http://127.0.0.1:8002",
    "server2": "http://127.0.0.1:8003",
    "cache": "http://127.0.0.1:8004",
    "monitoring": "http://127.0.0.1:8005",
}


class MonitorSettings(ServiceSettings):
    """MONITOR_TARGETS is `name=url` pairs separated by commas (a host name stands for every
    address it resolves to); ALERT_* tune the alert rules."""

    service_name: str = "monitoring"
    porta: int = Field(default=8005, ge=1, le=65535)
    monitor_targets: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_TARGETS)
    )
    poll_interval: float = Field(default=2.0, gt=0, description="Seconds between polls")
    # Each target's host name is resolved again this often: on Kubernetes a headless Service
    # names every pod, so pods that come and go become instances that come and go.
    resolve_interval: float = Field(default=5.0, gt=0, description="Seconds between lookups")
    probe_timeout: float = Field(default=2.0, gt=0)
    uptime_window: int = Field(default=3600, ge=10, description="Seconds of history for uptime %")
    rate_window: float = Field(
        default=60.0, gt=0, description="Seconds over which rates and quantiles are computed"
    )
    chart_window: float = Field(default=900.0, gt=0, description="Seconds of chart history")
    balancer_target: str = Field(default="load_balancer", description="Target that balances")
    cache_target: str = Field(default="cache", description="Service named by cache alerts")

    alert_down_for: float = Field(default=15.0, ge=0)
    alert_latency_p95_ms: float = Field(default=500.0, gt=0)
    alert_latency_for: float = Field(default=60.0, ge=0)
    alert_error_ratio: float = Field(default=0.05, gt=0, le=1)
    alert_error_for: float = Field(default=60.0, ge=0)
    alert_cache_hit_ratio: float = Field(default=0.8, ge=0, le=1)
    alert_cache_for: float = Field(default=120.0, ge=0)
    alert_backend_for: float = Field(default=10.0, ge=0)
    alert_min_rate: float = Field(
        default=0.05, ge=0, description="Requests/s below which ratio and latency rules stay quiet"
    )
    alert_history: int = Field(default=500, ge=1, description="Alert transitions kept")

    alert_webhook_url: AnyHttpUrl | None = None
    alert_webhook_retries: int = Field(default=3, ge=0)
    alert_webhook_timeout: float = Field(default=5.0, gt=0)
    alert_webhook_backoff: float = Field(default=0.5, gt=0, description="First retry delay, s")
    alert_repeat_interval: float = Field(
        default=4 * 3600,
        ge=0,
        description="A firing alert is notified again this often, s (0: never)",
    )
    external_url: str = Field(default="", description="Base URL of this monitor in alert links")

    @field_validator("monitor_targets", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        targets: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in value.split(","))):
            name, sep, url = pair.partition("=")
            if not sep or not name.strip() or not url.strip().startswith(("http://", "https://")):
                raise ValueError(f"target {pair!r} is not name=http(s)://host:port")
            targets[name.strip()] = url.strip().rstrip("/")
        if not targets:
            raise ValueError("MONITOR_TARGETS names no target")
        return targets

    @field_validator("alert_webhook_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value
