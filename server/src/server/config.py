"""Configuration of an item server instance."""

from pydantic import Field
from svc_common.settings import AuthSettings, DatabaseSettings


class ServerSettings(AuthSettings, DatabaseSettings):
    """server on 8002 by default; server2 is the same code with SERVICE_NAME and PORTA changed."""

    service_name: str = "server"
    porta: int = Field(default=8002, ge=1, le=65535)
