"""Hit ratio of the servers' item cache under a skewed read load through the gateway.

Starts its own stack (server, server2, load_balancer, api_gateway, cache) on a fresh
PostgreSQL database and a private redis-server, seeds ITEMS items, then reads them through
the gateway with ids drawn from a Zipf distribution (s = 1.1), the way popular products are
read. The hit ratio printed is the one /cache/stats reports for the `itens` namespace.

    make bench-cache        # or: PYTHONPATH=. .venv/bin/python bench/cache_hit_ratio.py --help
"""

import argparse
import asyncio
import itertools
import json
import random
import sys
import time
from collections import Counter
from typing import Any

import httpx

from bench import fixtures
from tests.integration.conftest import OUTPUT
from tests.integration.databases import create_database, drop_database
from tests.integration.gateways import PrivateRedis
from tests.integration.stack import Stack

SERVICES = ("server", "server2", "load_balancer", "api_gateway", "cache")


def zipf_ranks(n: int, s: float, count: int, rng: random.Random) -> list[int]:
    """`count` ranks in 0..n-1, rank k drawn with probability proportional to 1/(k+1)^s."""
    weights = list(itertools.accumulate(1 / (k + 1) ** s for k in range(n)))
    return rng.choices(range(n), cum_weights=weights, k=count)


async def _seed(stack: Stack, auth: dict[str, str], items: int) -> list[int]:
    # Seeded straight on the servers: only the reads are the measured workload.
    servers = itertools.cycle([stack.url("server"), stack.url("server2")])
    async with httpx.AsyncClient(headers=auth, timeout=30) as client:
        ids: list[int] = []
        for start in range(0, items, 50):
            batch = [
                client.post(f"{next(servers)}/itens", json={"nome": f"Produto {n}", "preco": 1 + n})
                for n in range(start, min(start + 50, items))
            ]
            ids += [r.raise_for_status().json()["data"]["id"] for r in await asyncio.gather(*batch)]
    return ids


async def _item_counts(client: httpx.AsyncClient, cache_url: str) -> tuple[int, int]:
    stats = (await client.get(f"{cache_url}/cache/stats")).raise_for_status().json()["data"]
    itens = stats["namespaces"].get("itens", {"hits": 0, "misses": 0})
    return int(itens["hits"]), int(itens["misses"])


async def _read_load(
    stack: Stack, auth: dict[str, str], ids: list[int], args: argparse.Namespace
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    rng.shuffle(ids)  # popularity is unrelated to the id
    plan = [ids[rank] for rank in zipf_ranks(len(ids), args.s, args.reads, rng)]
    statuses: Counter[int | str] = Counter()
    queue = iter(plan)
    gateway = stack.url("api_gateway")
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(headers=auth, timeout=30, limits=limits) as client:
        hits0, misses0 = await _item_counts(client, stack.url("cache"))

        async def worker() -> None:
            for item_id in queue:
                try:
                    response = await client.get(f"{gateway}/itens/{item_id}")
                    statuses[response.status_code] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
        hits1, misses1 = await _item_counts(client, stack.url("cache"))
    hits, misses = hits1 - hits0, misses1 - misses0
    return {
        "reads": args.reads,
        "items": len(ids),
        "zipf_s": args.s,
        "distinct_items_read": len(set(plan)),
        "statuses": {str(k): v for k, v in statuses.items()},
        "hits": hits,
        "misses": misses,
        "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else 0.0,
        # Every distinct item must miss once: the best any cold cache could do on this plan.
        "ceiling": round(1 - len(set(plan)) / args.reads, 4),
        "reads_per_second": round(args.reads / elapsed, 1),
    }


def main() -> int:
    """Run the benchmark; exit 1 when the hit ratio is under --target or a read failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--s", type=float, default=1.1, help="Zipf exponent")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.90)
    args = parser.parse_args()

    workdir = OUTPUT / "bench-cache"
    workdir.mkdir(parents=True, exist_ok=True)
    redis_server = PrivateRedis(workdir)
    database = asyncio.run(create_database("bench_cache"))
    stack = Stack(
        "bench-cache",
        workdir,
        database,
        redis_server.url,
        extra_env={"LOG_LEVEL": "WARNING"},
    )
    try:
        redis_server.start()
        for service in SERVICES:
            stack.start(service)
        for service in SERVICES:
            stack.wait_healthy(service)
        token = fixtures.admin_token(stack)
        auth = {"Authorization": f"Bearer {token}"}
        ids = asyncio.run(_seed(stack, auth, args.items))
        result = asyncio.run(_read_load(stack, auth, ids, args))
    finally:
        stack.stop_all()
        redis_server.stop()
        asyncio.run(drop_database(database))
    print(
        f"reads {result['reads']} over {result['items']} items (Zipf s={result['zipf_s']}), "
        f"{result['distinct_items_read']} distinct, {result['reads_per_second']} reads/s"
    )
    print(f"statuses {result['statuses']}")
    print(
        f"itens cache: {result['hits']} hits, {result['misses']} misses, "
        f"hit ratio {result['hit_ratio']:.2%} (cold-cache ceiling {result['ceiling']:.2%}, "
        f"target {args.target:.0%})"
    )
    print(json.dumps(result))
    failed = sum(v for k, v in result["statuses"].items() if k != "200")
    return 0 if result["hit_ratio"] >= args.target and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
