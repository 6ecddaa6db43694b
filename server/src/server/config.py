"""Configuration of an item server instance."""

from pydantic import Field
from svc_common.settings import AuthSettings, DatabaseSettings


class ServerSettings(AuthSettings, DatabaseSettings):
    """server on 8002 by default; server2 is the same code with SERVICE_NAME and PORTA changed."""

    service_name: str = "server"
    porta: int = Field(default=8002, ge=1, le=65535)
    redis_url: str | None = Field(
        default=None, description="Read-through item cache; unset means every read hits the DB"
    )
    item_cache_ttl: int = Field(default=300, ge=1, description="Seconds an item stays cached")
    item_cache_jitter: float = Field(
        default=0.1, ge=0, le=1, description="Up to this fraction is added to each TTL at random"
    )
    redis_timeout: float = Field(
        default=1.0, gt=0, description="Seconds before a Redis call gives way to the database"
    )
