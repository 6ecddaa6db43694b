"""The cache API in-process on the memory store."""

from collections.abc import Iterator

import pytest
from cache.config import CacheSettings
from cache.main import build_app
from fastapi.testclient import TestClient

from conftest import TEST_KEY, TokenFactory


@pytest.fixture
def client(make_token: TokenFactory) -> Iterator[TestClient]:
    settings = CacheSettings(secret_key=TEST_KEY, redis_url=None, max_ttl=3600, _env_file=None)  # type: ignore[call-arg]
    with TestClient(build_app(settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {make_token()}"
        yield test_client


def test_default_ttl_applies_when_none_is_given(client: TestClient) -> None:
    assert client.post("/cache", json={"key": "a", "value": 1}).json()["data"]["ttl"] == 300


@pytest.mark.parametrize(
    "body",
    [
        {"key": "a b", "value": 1},
        {"key": "", "value": 1},
        {"key": "a", "value": 1, "ttl": 0},
        {"key": "a", "value": 1, "ttl": 3601},
        {"value": 1},
    ],
)
def test_bad_writes_are_422(client: TestClient, body: dict) -> None:
    response = client.post("/cache", json=body)
    assert response.status_code == 422
    assert response.json()["status"] == "error"


def test_oversized_values_are_413(client: TestClient) -> None:
    response = client.post("/cache", json={"key": "big", "value": "x" * 600_000})
    assert response.status_code == 413
