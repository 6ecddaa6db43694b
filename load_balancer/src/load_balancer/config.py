"""Configuration of the load balancer."""

from typing import Literal

from pydantic import Field, field_validator, model_validator
from svc_common.forwarding.pool import IDLE_SECONDS
from svc_common.settings import CommaList, ServiceSettings, split_commas


class BalancerSettings(ServiceSettings):
    """SERVIDORES is the seed's comma-separated list of backend base URLs."""

    service_name: str = "load_balancer"
    porta: int = Field(default=8001, ge=1, le=65535)
    servidores: CommaList = Field(
        default=["http://127.0.0.1:8002", "http://127.0.0.1:8003"], min_length=1
    )
    balance_strategy: Literal["round_robin", "least_conn"] = "round_robin"

    # Active checks: GET HEALTH_PATH on every backend each HEALTH_INTERVAL seconds.
    health_path: str = "/saude"
    health_interval: float = Field(default=2.0, gt=0)
    # Down or wavering backends are probed this often (HAProxy's fastinter); default interval/2.
    health_fast_interval: float | None = Field(default=None, gt=0)
    # A probe slower than this fails (unless live requests prove the backend is answering).
    health_timeout: float = Field(default=2.0, gt=0)
    health_rise: int = Field(default=2, ge=1)
    health_fall: int = Field(default=3, ge=1)

    # Passive ejection: this many failed requests in a row take a backend out for
    # EJECT_TIME seconds, doubling with each repeated ejection up to EJECT_MAX_TIME.
    eject_after: int = Field(default=3, ge=1)
    eject_time: float | None = Field(default=None, gt=0)
    eject_max_time: float = Field(default=30.0, gt=0)

    # Deadlines: the whole request, one try's silence, one TCP connect.
    upstream_timeout: float = Field(default=10.0, gt=0)
    try_timeout: float = Field(default=5.0, gt=0)
    connect_timeout: float = Field(default=1.0, gt=0)

    # Request bodies up to this size are buffered and may be replayed on another backend;
    # larger ones are streamed and never retried once their first byte was sent.
    retry_buffer_bytes: int = Field(default=64 * 1024, ge=0)

    # Give POST/PATCH requests without an Idempotency-Key one, which makes them safe to resend
    # after a backend died mid-request: the item servers store a keyed POST once. Turn it off
    # only in front of backends that ignore the header.
    add_idempotency_keys: bool = True

    pool_limit: int = Field(default=512, ge=1, description="Open connections, all backends")
    pool_limit_per_backend: int = Field(default=256, ge=1)
    # Idle time before the balancer closes a backend connection (both of its clients): keep
    # it below the backends' keep-alive (svc_common.forwarding.pool.IDLE_SECONDS).
    keepalive_timeout: float = Field(default=IDLE_SECONDS, gt=0)
    # How often a host name in SERVIDORES is resolved again (headless services).
    resolve_interval: float = Field(default=5.0, gt=0)

    _split = field_validator("servidores", mode="before")(split_commas)

    @field_validator("servidores")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"backend {url!r} must start with http:// or https://")
        return [url.rstrip("/") for url in urls]

    @field_validator("health_path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        return path if path.startswith("/") else f"/{path}"

    @model_validator(mode="after")
    def _derived(self) -> "BalancerSettings":
        if self.health_fast_interval is None:
            self.health_fast_interval = self.health_interval / 2
        if self.eject_time is None:
            self.eject_time = self.health_interval
        return self

    @property
    def fast_interval(self) -> float:
        """The probe interval for backends that are down or changing state."""
        assert self.health_fast_interval is not None  # set by the validator
        return self.health_fast_interval

    @property
    def base_ejection(self) -> float:
        """How long a first passive ejection lasts."""
        assert self.eject_time is not None  # set by the validator
        return self.eject_time
