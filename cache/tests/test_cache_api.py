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
        # Was a 500 (found by fuzzing): the encoder stops at 64-bit integers.
        {"key": "a", "value": [1, {"n": 2**64}]},
    ],
)
def test_bad_writes_are_422(client: TestClient, body: dict) -> None:
    response = client.post("/cache", json=body)
    assert response.status_code == 422
    assert response.json()["status"] == "error"


def test_oversized_values_are_413(client: TestClient) -> None:
    response = client.post("/cache", json={"key": "big", "value": "x" * 600_000})
    assert response.status_code == 413


def test_stats_break_lookups_down_by_namespace(client: TestClient) -> None:
    client.post("/cache", json={"key": "produto:1", "value": {"nome": "x"}})
    client.get("/cache/produto:1")
    client.get("/cache/produto:2")
    client.get("/cache/solto")
    stats = client.get("/cache/stats").json()["data"]
    assert stats["namespaces"]["produto"] == {"hits": 1, "misses": 1, "hit_ratio": 0.5, "keys": 1}
    assert stats["namespaces"]["default"]["misses"] == 1
    assert (stats["hits"], stats["misses"], stats["keys"]) == (1, 2, 1)


def test_only_an_admin_may_clear_a_namespace(client: TestClient, make_token: TokenFactory) -> None:
    client.post("/cache", json={"key": "produto:1", "value": 1})
    client.post("/cache", json={"key": "pedido:1", "value": 1})
    user = {"Authorization": f"Bearer {make_token(sub='ana', role='user')}"}
    refused = client.delete("/cache/namespaces/produto", headers=user)
    assert refused.status_code == 403
    assert refused.json()["status"] == "error"
    cleared = client.delete("/cache/namespaces/produto")
    assert cleared.json()["data"] == {"namespace": "produto", "removed": 1}
    assert client.get("/cache/produto:1").status_code == 404
    assert client.get("/cache/pedido:1").status_code == 200


def test_nobody_may_plant_values_in_the_item_servers_namespace(client: TestClient) -> None:
    response = client.post("/cache", json={"key": "itens:1", "value": {"nome": "fake"}})
    assert response.status_code == 403
    assert response.json()["status"] == "error"


def test_every_cache_call_needs_a_token(client: TestClient) -> None:
    del client.headers["Authorization"]
    for method, path in [
        ("GET", "/cache/stats"),
        ("GET", "/cache/a"),
        ("DELETE", "/cache/a"),
        ("DELETE", "/cache/namespaces/a"),
        ("POST", "/cache"),
    ]:
        response = client.request(method, path, json={"key": "a", "value": 1})
        assert response.status_code == 401, (method, path)
