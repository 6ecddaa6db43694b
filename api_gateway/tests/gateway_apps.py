"""Helpers for tests of the gateway in-process: a throwaway SQLite file, no balancer."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from api_gateway.config import GatewaySettings
from api_gateway.main import build_app
from fastapi.testclient import TestClient

# The repository's root conftest, where the test signing key lives.
from conftest import TEST_KEY


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_settings(tmp_path: Path, **overrides: Any) -> GatewaySettings:
    """Settings for an in-process gateway; overrides win."""
    nobody = f"http://127.0.0.1:{closed_port()}"
    values: dict[str, Any] = {
        "secret_key": TEST_KEY,
        "database_url": f"sqlite:///{tmp_path}/gateway.db",
        # Nothing listens there: forwarding answers 503 at once.
        "load_balancer_url": nobody,
        "items_openapi_url": f"{nobody}/openapi.json",
        "access_log": False,
        # admin/admin123 and user/user123, which these tests log in with.
        "demo_users": True,
    }
    return GatewaySettings(**(values | overrides), _env_file=None)  # type: ignore[arg-type]


@contextmanager
def running_gateway(tmp_path: Path, **overrides: Any) -> Iterator[TestClient]:
    """A gateway app with its lifespan running; overrides win over the test settings."""
    app = build_app(gateway_settings(tmp_path, **overrides))
    # A real address for the peer, as uvicorn would report it.
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        yield client


def login(client: TestClient, username: str = "admin", password: str = "admin123") -> Any:
    """The `data` of a successful /login."""
    response = client.post("/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["data"]
