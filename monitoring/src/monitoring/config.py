"""Configuration of the monitor."""

from typing import Annotated, Any

from pydantic import Field, field_validator
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
    """MONITOR_TARGETS is `name=url` pairs separated by commas."""

    service_name: str = "monitoring"
    porta: int = Field(default=8005, ge=1, le=65535)
    monitor_targets: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_TARGETS)
    )
    poll_interval: float = Field(default=2.0, gt=0, description="Seconds between polls")
    probe_timeout: float = Field(default=2.0, gt=0)
    uptime_window: int = Field(default=3600, ge=10, description="Seconds of history for uptime %")

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
