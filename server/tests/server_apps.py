"""Helpers for tests of an item server in-process, over a throwaway SQLite file."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from server.config import ServerSettings
from server.main import build_app

# The repository's root conftest, where the test signing key lives.
from conftest import TEST_KEY


def server_settings(tmp_path: Path, **overrides: Any) -> ServerSettings:
    """Settings of an instance named server2 on tmp_path/items.db; overrides win."""
    values: dict[str, Any] = {
        "service_name": "server2",
        "secret_key": TEST_KEY,
        "database_url": f"sqlite:///{tmp_path}/items.db",
    }
    return ServerSettings(**(values | overrides), _env_file=None)  # type: ignore[arg-type]


@contextmanager
def running_server(tmp_path: Path, **overrides: Any) -> Iterator[TestClient]:
    """A server app with its lifespan running."""
    with TestClient(build_app(server_settings(tmp_path, **overrides))) as client:
        yield client
