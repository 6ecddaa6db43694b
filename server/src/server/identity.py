"""GET /identidade: which server instance answered, to watch the balancer spread the calls."""

import os
import socket
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from svc_common.auth import CurrentUser
from svc_common.envelope import Envelope, ErrorEnvelope

router = APIRouter(
    tags=["identidade"],
    responses={401: {"model": ErrorEnvelope, "description": "Missing or invalid token"}},
)

# Taken once: the host name cannot change under a running process, and this module is
# imported while the server starts, so its import time stands for the process's start.
_HOST = socket.gethostname()
_STARTED_AT = datetime.now(UTC)


class Identity(BaseModel):
    """The instance that answered."""

    service: str = Field(description="SERVICE_NAME of the instance: server, server2, ...")
    host: str = Field(description="Host name: the container or pod name when it runs in one")
    pid: int = Field(description="Process id on that host")
    started_at: datetime = Field(description="When the process started (UTC)")
    version: str = Field(description="Version of the server's API")


@router.get("/identidade", summary="Which server instance answered")
async def identidade(request: Request, _: CurrentUser) -> Envelope[Identity]:
    """The answering instance's name, host, process, start time and version."""
    service: str = request.app.state.settings.service_name
    identity = Identity(
        service=service,
        host=_HOST,
        pid=os.getpid(),
        started_at=_STARTED_AT,
        version=request.app.version,
    )
    return Envelope(data=identity, message=f"Answered by {service}")
