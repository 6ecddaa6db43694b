"""Redis stopped and restarted under load: items served throughout, the cache service heals.

test_cache_redis_outage.py pins the same against the servers and the cache service called
directly; here the load goes through the gateway (rate limiting included) while Redis dies.
"""

import asyncio
import itertools
import time
from collections.abc import Callable

import httpx

from tests.integration.conftest import login
from tests.integration.faults.conftest import monitor_states, steady_load, stored_ids, until
from tests.integration.faults.traffic import Outcome, Traffic
from tests.integration.gateways import PrivateRedis
from tests.integration.stack import Stack

OUTAGE = 3.0


async def cache_load(stack: Stack, traffic: Traffic, stop: asyncio.Event) -> None:
    """One client writing and reading a key of the cache service, in turn."""
    token = await asyncio.to_thread(login, stack, "admin", "admin123")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.url("cache"), headers=headers, timeout=30) as http:
        for turn in itertools.count():
            if stop.is_set():
                return
            kind = ("post", "get")[turn % 2]
            sent = time.monotonic()
            try:
                if kind == "post":
                    response = await http.post("/cache", json={"key": "fault:k", "value": turn})
                else:
                    response = await http.get("/cache/fault:k")
                status, body = response.status_code, response.text
            except httpx.HTTPError as exc:
                status, body = 0, repr(exc)
            traffic.outcomes.append(Outcome(kind, sent, time.monotonic(), status, body))
            await asyncio.sleep(0.02)


def health(stack: Stack, service: str) -> str:
    """The state a service's own /saude reports (ok, degraded, down)."""
    return str(httpx.get(f"{stack.url(service)}/saude", timeout=5).json()["data"]["status"])


async def test_redis_restart_under_load_serves_every_item_and_the_cache_service_heals(
    healthy: Stack, fault_redis: PrivateRedis, say: Callable[[str], None]
) -> None:
    stack = healthy
    cache, stop_cache = Traffic(), asyncio.Event()
    cache_task = asyncio.create_task(cache_load(stack, cache, stop_cache))
    try:
        async with steady_load(stack) as items:
            await until(lambda: len(items.acknowledged) >= 10 and len(cache.outcomes) >= 10)
            await asyncio.to_thread(fault_redis.stop)
            down_at = time.monotonic()
            await until(lambda: health(stack, "server") == "degraded")
            services = ("api_gateway", "server", "server2", "cache")
            seen_down = {s: health(stack, s) for s in services}
            await until(lambda: monitor_states(stack)["cache"] == "down")
            monitor_down = monitor_states(stack)
            await asyncio.sleep(max(0.0, down_at + OUTAGE - time.monotonic()))
            await asyncio.to_thread(fault_redis.start)
            back = time.monotonic()
            await until(lambda: cache.recovery(back) is not None and len(cache.since(back)) >= 20)
            await until(lambda: len(items.since(back)) >= 30)
    finally:
        stop_cache.set()
        await cache_task
    cache_recovery = cache.recovery(back)
    say(items.summary(f"redis-restart items via gateway (down {back - down_at:.1f}s)"))
    say(cache.summary("redis-restart cache service", cache_recovery))
    say(f"FAULT redis-restart: /saude while down {seen_down}; monitor {monitor_down}")

    during = [o for o in items.outcomes if down_at <= o.sent < back]
    assert len(during) > 20, "the load met the outage"
    # Items keep coming, reads and writes: the servers fall back on the database.
    assert [o for o in items.outcomes if not o.ok] == []
    # Rate limiting goes on in process: every answer still carries the limit headers.
    assert all(o.limited for o in items.outcomes)
    assert seen_down == {
        "api_gateway": "degraded",
        "server": "degraded",
        "server2": "degraded",
        "cache": "down",
    }
    # The monitor shows "up" for a degraded service; only the cache service is down.
    assert {name for name, state in monitor_down.items() if state != "up"} == {"cache"}
    # The cache service has nothing to serve from: 503 in the envelope, never a 500. This
    # Redis keeps nothing on disk, so a read just after its return may miss: 404.
    cache_down = [o for o in cache.outcomes if down_at <= o.sent < back]
    assert any(o.envelope_503 for o in cache_down)
    assert cache.unexpected(allowed=frozenset({404})) == []
    assert cache_recovery is not None
    await until(lambda: health(stack, "server") == "ok" and health(stack, "api_gateway") == "ok")

    stored = await asyncio.to_thread(stored_ids, stack, items.tag)
    assert {i: n for i, n in items.acknowledged.items() if stored.get(i) != n} == {}
