"""Redis dies and comes back: the servers keep answering, the cache service says 503, then heals.

These tests kill Redis, so they run their own redis-server on a free port (never the shared
one) and their own servers and cache service on a database of their own.
"""

import asyncio
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from conftest import mint_token
from tests.integration.conftest import OUTPUT, require_installed
from tests.integration.databases import create_database, drop_database
from tests.integration.gateways import PrivateRedis, running_redis_server
from tests.integration.stack import Stack

SERVICES = ("server", "server2", "cache")


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    require_installed("redis-server")
    with running_redis_server(OUTPUT / "redis-outage") as server:
        yield server


@pytest.fixture(scope="module")
def outage_stack(postgres_database: str, private_redis: PrivateRedis) -> Iterator[Stack]:
    database = asyncio.run(create_database("outage"))
    workdir = OUTPUT / "stack-redis-outage"
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*.log"):
        old.unlink()
    stack = Stack("redis-outage", workdir, database, private_redis.url)
    try:
        for service in SERVICES:
            stack.start(service)
        for service in SERVICES:
            stack.wait_healthy(service)
        yield stack
    finally:
        stack.stop_all()
        asyncio.run(drop_database(database))


@pytest.fixture
def running_redis(private_redis: PrivateRedis) -> PrivateRedis:
    if private_redis.proc is None or private_redis.proc.poll() is not None:
        private_redis.start()
    return private_redis


def _auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(stack.secret_key)}"}


def _item_hits(url: str) -> int:
    client = redis.Redis.from_url(url, socket_timeout=1)
    try:
        return int(client.hget("cache:stats", "itens:hits") or 0)
    except redis.RedisError:
        return 0
    finally:
        client.close()


async def test_killing_redis_during_a_read_load_fails_no_request(
    outage_stack: Stack, running_redis: PrivateRedis
) -> None:
    servers = [outage_stack.url("server"), outage_stack.url("server2")]
    async with httpx.AsyncClient(headers=_auth(outage_stack), timeout=30) as client:
        ids = []
        for n in range(20):
            created = await client.post(f"{servers[0]}/itens", json={"nome": f"i{n}", "preco": 1})
            ids.append(created.json()["data"]["id"])
        failures: list[Any] = []
        served: dict[str, int] = {"up": 0, "down": 0, "back": 0}
        phase = "up"
        done = False

        async def reader() -> None:
            while not done:
                url = f"{random.choice(servers)}/itens/{random.choice(ids)}"
                try:
                    response = await client.get(url)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append((response.status_code, response.text))
                served[phase] += 1

        readers = [asyncio.create_task(reader()) for _ in range(6)]
        await asyncio.sleep(1.5)
        assert _item_hits(running_redis.url) > 0, "the load was served from the cache"
        await asyncio.to_thread(running_redis.stop)
        phase = "down"
        await asyncio.sleep(1.0)
        written = await client.put(f"{servers[1]}/itens/{ids[0]}", json={"nome": "w", "preco": 2})
        assert written.status_code == 200, "writes go on without Redis too"
        health = (await client.get(f"{servers[0]}/saude")).json()["data"]
        assert health["status"] == "degraded"
        assert health["checks"]["redis"]["status"] == "down"
        await asyncio.sleep(1.0)
        await asyncio.to_thread(running_redis.start)
        phase = "back"
        for _ in range(100):  # up to 20 s for a server to notice Redis is back
            if _item_hits(running_redis.url) > 0:
                break
            await asyncio.sleep(0.2)
        done = True
        await asyncio.gather(*readers)
        assert failures == []
        assert served["down"] > 0, "requests were made while Redis was dead"
        assert _item_hits(running_redis.url) > 0, "the servers use the cache again"
        for base in servers:
            assert (await client.get(f"{base}/itens/{ids[0]}")).json()["data"]["nome"] == "w"


def test_the_cache_service_answers_503_while_redis_is_down_and_recovers_by_itself(
    outage_stack: Stack, running_redis: PrivateRedis
) -> None:
    with httpx.Client(
        base_url=outage_stack.url("cache"), headers=_auth(outage_stack), timeout=10
    ) as cache:
        assert cache.post("/cache", json={"key": "a", "value": 1}).status_code == 201
        running_redis.stop()
        for method, path in [("GET", "/cache/a"), ("GET", "/cache/stats"), ("POST", "/cache")]:
            response = cache.request(method, path, json={"key": "a", "value": 1})
            assert response.status_code == 503, (method, path, response.text)
            assert response.json()["status"] == "error"
            assert response.headers["retry-after"] == "1"
        running_redis.start()
        deadline = time.monotonic() + 20
        while cache.get("/cache/stats").status_code != 200:
            assert time.monotonic() < deadline, "the cache service did not recover"
            time.sleep(0.2)
        assert cache.post("/cache", json={"key": "a", "value": 2}).status_code == 201
        assert cache.get("/cache/a").json()["data"]["value"] == 2


def test_the_cache_service_walks_keys_with_scan_never_keys(
    outage_stack: Stack, running_redis: PrivateRedis
) -> None:
    client = redis.Redis.from_url(running_redis.url)

    def calls(command: str) -> int:
        stats = client.info("commandstats").get(f"cmdstat_{command}", {})
        return int(stats.get("calls", 0))

    with httpx.Client(
        base_url=outage_stack.url("cache"), headers=_auth(outage_stack), timeout=10
    ) as cache:
        for n in range(30):
            cache.post("/cache", json={"key": f"scan:{n}", "value": n})
        scans = calls("scan")
        assert cache.get("/cache/stats").json()["data"]["namespaces"]["scan"]["keys"] == 30
        assert cache.delete("/cache/namespaces/scan").json()["data"]["removed"] == 30
    assert calls("scan") > scans
    assert calls("keys") == 0
    client.close()
