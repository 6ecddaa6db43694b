"""Configuration of the load balancer."""

from pydantic import Field, field_validator
from svc_common.settings import CommaList, ServiceSettings, split_commas


class BalancerSettings(ServiceSettings):
    """SERVIDORES is the seed's comma-separated list of backend base URLs."""

    service_name: str = "load_balancer"
    porta: int = Field(default=8001, ge=1, le=65535)
    servidores: CommaList = Field(
        default=["http://127.0.0.1:8002", "http://127.0.0.1:8003"], min_length=1
    )
    upstream_timeout: float = Field(default=10.0, gt=0, description="Whole-request deadline, s")
    connect_timeout: float = Field(default=1.0, gt=0, description="TCP connect timeout, s")
    pool_limit: int = Field(default=256, ge=1, description="Open connections, all backends")

    _split = field_validator("servidores", mode="before")(split_commas)

    @field_validator("servidores")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"backend {url!r} must start with http:// or https://")
        return [url.rstrip("/") for url in urls]
