"""Configuration of the cache service."""

from pydantic import Field
from svc_common.settings import AuthSettings


class CacheSettings(AuthSettings):
    """REDIS_URL is the seed's name; unset means an in-process store (one process only)."""

    service_name: str = "cache"
    porta: int = Field(default=8004, ge=1, le=65535)
    redis_url: str | None = None
    default_ttl: int = Field(default=300, ge=1, description="Seconds, when POST /cache has none")
    max_ttl: int = Field(default=30 * 24 * 3600, ge=1)
    max_value_bytes: int = Field(default=512 * 1024, ge=1)
