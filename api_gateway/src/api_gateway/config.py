"""Configuration of the API gateway."""

from pydantic import Field
from svc_common.settings import AuthSettings, DatabaseSettings


class GatewaySettings(AuthSettings, DatabaseSettings):
    """LOAD_BALANCER_URL and SECRET_KEY are the seed's names."""

    service_name: str = "api_gateway"
    porta: int = Field(default=8000, ge=1, le=65535)
    load_balancer_url: str = "http://127.0.0.1:8001"
    access_token_minutes: int = Field(default=30, ge=1, le=24 * 60)
    upstream_timeout: float = Field(default=15.0, gt=0)
    connect_timeout: float = Field(default=2.0, gt=0)
    pool_limit: int = Field(default=256, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
