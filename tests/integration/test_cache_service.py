"""The cache service over the stack's store: namespaces, admin-only clearing, shared statistics."""

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import login
from tests.integration.stack import Stack

REDIS_ONLY = pytest.mark.parametrize("stack", ["postgres-redis"], indirect=True)


@pytest.fixture
def cache(stack: Stack, admin_token: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=stack.url("cache"), headers=headers, timeout=10) as client:
        yield client


def _namespace_stats(cache: httpx.Client, namespace: str) -> dict[str, Any]:
    stats = cache.get("/cache/stats")
    assert stats.status_code == 200
    found: dict[str, Any] = stats.json()["data"]["namespaces"].get(
        namespace, {"hits": 0, "misses": 0, "keys": 0}
    )
    return found


def test_namespaces_are_counted_and_cleared_separately(stack: Stack, cache: httpx.Client) -> None:
    ns = f"ns{uuid.uuid4().hex[:8]}"
    other = f"ns{uuid.uuid4().hex[:8]}"
    for key in (f"{ns}:1", f"{ns}:2", f"{other}:1"):
        stored = cache.post("/cache", json={"key": key, "value": {"k": key}, "ttl": 60})
        assert stored.status_code == 201
    read = cache.get(f"/cache/{ns}:1")
    assert read.json()["data"]["value"] == {"k": f"{ns}:1"}
    assert 0 < read.json()["data"]["ttl"] <= 60
    assert cache.get(f"/cache/{ns}:3").status_code == 404
    assert _namespace_stats(cache, ns) == {"hits": 1, "misses": 1, "hit_ratio": 0.5, "keys": 2}
    user = login(stack, "user", "user123")
    refused = cache.delete(f"/cache/namespaces/{ns}", headers={"Authorization": f"Bearer {user}"})
    assert refused.status_code == 403
    cleared = cache.delete(f"/cache/namespaces/{ns}")
    assert cleared.json()["data"] == {"namespace": ns, "removed": 2}
    assert _namespace_stats(cache, ns)["keys"] == 0
    assert _namespace_stats(cache, other)["keys"] == 1


def test_every_cache_call_needs_a_valid_token(stack: Stack) -> None:
    base = stack.url("cache")
    for method, path in [("GET", "/cache/stats"), ("GET", "/cache/a"), ("POST", "/cache")]:
        response = httpx.request(method, f"{base}{path}", headers={"Authorization": "Bearer x.y.z"})
        assert response.status_code == 401
        assert response.json()["status"] == "error"


@REDIS_ONLY
def test_cache_stats_count_the_item_servers_lookups(
    stack: Stack, cache: httpx.Client, admin_token: str
) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    server, server2 = stack.url("server"), stack.url("server2")
    item = httpx.post(f"{server}/itens", headers=auth, json={"nome": "x", "preco": 1}).json()
    before = _namespace_stats(cache, "itens")
    for base in (server, server2, server):
        assert httpx.get(f"{base}/itens/{item['data']['id']}", headers=auth).status_code == 200
    after = _namespace_stats(cache, "itens")
    assert (after["hits"] - before["hits"], after["misses"] - before["misses"]) == (2, 1)


@REDIS_ONLY
def test_the_item_cache_can_be_read_and_cleared_but_not_written_through_the_cache_api(
    stack: Stack, cache: httpx.Client, admin_token: str
) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    server = stack.url("server")
    created = httpx.post(f"{server}/itens", headers=auth, json={"nome": "x", "preco": 1})
    item = created.json()["data"]
    httpx.get(f"{server}/itens/{item['id']}", headers=auth)
    cached = cache.get(f"/cache/itens:{item['id']}").json()["data"]
    assert cached["value"] == item
    assert 0 < cached["ttl"] <= 330  # ITEM_CACHE_TTL 300 plus up to 10% jitter
    planted = cache.post("/cache", json={"key": f"itens:{item['id']}", "value": {"preco": 0}})
    assert planted.status_code == 403
    assert cache.delete("/cache/namespaces/itens").json()["data"]["removed"] >= 1
    assert cache.get(f"/cache/itens:{item['id']}").status_code == 404
    again = httpx.get(f"{server}/itens/{item['id']}", headers=auth)
    assert again.json()["data"] == item
