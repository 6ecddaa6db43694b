"""Two server instances, one database, one item cache: no stale read, no lost update."""

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.stack import Stack


@pytest.fixture
async def client(admin_token: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        yield http


def _servers(stack: Stack) -> list[str]:
    return [stack.url("server"), stack.url("server2")]


async def _create(client: httpx.AsyncClient, base: str, **fields: Any) -> dict[str, Any]:
    response = await client.post(f"{base}/itens", json={"nome": "x", "preco": 1} | fields)
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()["data"]
    return item


async def test_a_write_on_one_server_is_read_at_once_on_the_other(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    servers = _servers(stack)
    item_id = (await _create(client, servers[0]))["id"]
    for i in range(10):
        for base in servers:  # both instances have the old version cached now
            assert (await client.get(f"{base}/itens/{item_id}")).status_code == 200
        put = await client.put(
            f"{servers[i % 2]}/itens/{item_id}", json={"nome": f"v{i}", "preco": 1}
        )
        assert put.status_code == 200
        for base in reversed(servers):
            read = await client.get(f"{base}/itens/{item_id}")
            assert read.json()["data"]["nome"] == f"v{i}", base
            assert read.headers["etag"] == put.headers["etag"]
    await client.delete(f"{servers[0]}/itens/{item_id}")
    assert (await client.get(f"{servers[1]}/itens/{item_id}")).status_code == 404


async def test_no_read_started_after_an_acknowledged_write_returns_an_older_version(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    servers = _servers(stack)
    item_id = (await _create(client, servers[0]))["id"]
    acknowledged = 1
    writing = True
    stale: list[tuple[str, int, int]] = []
    reads = 0

    async def reader(base: str) -> None:
        nonlocal reads
        while writing:
            floor = acknowledged
            response = await client.get(f"{base}/itens/{item_id}")
            assert response.status_code == 200, response.text
            version = response.json()["data"]["version"]
            if version < floor:
                stale.append((base, floor, version))
            reads += 1

    async def writer() -> None:
        nonlocal acknowledged, writing
        for i in range(25):
            put = await client.put(
                f"{servers[i % 2]}/itens/{item_id}", json={"nome": f"v{i}", "preco": 1}
            )
            assert put.status_code == 200, put.text
            acknowledged = put.json()["data"]["version"]
        writing = False

    await asyncio.gather(writer(), *(reader(base) for base in servers * 3))
    assert stale == [], "reads that began after a write was acknowledged saw an older version"
    assert reads > 25


async def test_simultaneous_puts_with_one_etag_let_exactly_one_win(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    servers = _servers(stack)
    item_id = (await _create(client, servers[0]))["id"]
    tag = (await client.get(f"{servers[1]}/itens/{item_id}")).headers["etag"]
    puts = await asyncio.gather(
        *(
            client.put(
                f"{base}/itens/{item_id}",
                headers={"If-Match": tag},
                json={"nome": f"w{n}", "preco": 1},
            )
            for n, base in zip(range(8), itertools.cycle(servers), strict=False)
        )
    )
    assert sorted(p.status_code for p in puts) == [200] + [412] * 7
    winner = next(p for p in puts if p.status_code == 200).json()["data"]["nome"]
    for base in servers:
        assert (await client.get(f"{base}/itens/{item_id}")).json()["data"]["nome"] == winner


async def test_concurrent_conditional_increments_lose_nothing(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    servers = _servers(stack)
    item_id = (await _create(client, servers[0], descricao="0"))["id"]
    workers, increments = 4, 5
    conflicts = 0

    async def increment_repeatedly() -> None:
        nonlocal conflicts
        for _ in range(increments):
            while True:
                read = await client.get(f"{random.choice(servers)}/itens/{item_id}")
                count = int(read.json()["data"]["descricao"])
                put = await client.put(
                    f"{random.choice(servers)}/itens/{item_id}",
                    headers={"If-Match": read.headers["etag"]},
                    json={"nome": "x", "preco": 1, "descricao": str(count + 1)},
                )
                if put.status_code == 200:
                    break
                assert put.status_code == 412, put.text
                conflicts += 1

    await asyncio.gather(*(increment_repeatedly() for _ in range(workers)))
    final = (await client.get(f"{servers[1]}/itens/{item_id}")).json()["data"]
    assert final["descricao"] == str(workers * increments)
    assert final["version"] == 1 + workers * increments


async def test_a_listing_shows_every_acknowledged_write_on_either_server(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    servers = _servers(stack)
    tag = f"lista-{random.randrange(10**9)}"
    listing = {"q": tag, "sort": "id"}

    async def names(base: str) -> list[str]:
        response = await client.get(f"{base}/itens", params=listing)
        assert response.status_code == 200, response.text
        return [item["nome"] for item in response.json()["data"]]

    async def total(base: str) -> int:
        # One item a page: the total is counted (and cached), not read off the page.
        response = await client.get(f"{base}/itens", params=listing | {"limit": 1})
        return int(response.headers["x-total-count"])

    created = []
    for i in range(6):
        for base in servers:  # both have the current page and total cached now
            assert await names(base) == [f"{tag} {n}" for n in created]
            assert await total(base) == len(created)
        item = await _create(client, servers[i % 2], nome=f"{tag} {i}")
        created.append(i)
        for base in reversed(servers):
            assert await names(base) == [f"{tag} {n}" for n in created], base
            assert await total(base) == len(created), base
    put = await client.put(
        f"{servers[1]}/itens/{item['id']}", json={"nome": f"{tag} x", "preco": 1}
    )
    assert put.status_code == 200
    assert (await names(servers[0]))[-1] == f"{tag} x"
    assert (await client.delete(f"{servers[0]}/itens/{item['id']}")).status_code == 200
    assert f"{tag} x" not in await names(servers[1])


async def test_walking_the_link_header_visits_each_item_once_while_items_are_added(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    servers = _servers(stack)
    tag = f"walk-{random.randrange(10**9)}"
    first = [(await _create(client, servers[n % 2], nome=f"{tag} {n}"))["id"] for n in range(30)]
    inserting = True
    added: list[int] = []

    async def insert() -> None:
        n = 30
        while inserting:
            added.append((await _create(client, servers[n % 2], nome=f"{tag} {n}"))["id"])
            n += 1

    async def walk() -> list[int]:
        nonlocal inserting
        seen: list[int] = []
        url = f"{servers[0]}/itens?q={tag}&limit=4"
        for hop in itertools.count():
            response = await client.get(url)
            assert response.status_code == 200, response.text
            seen += [item["id"] for item in response.json()["data"]]
            link = response.headers.get("link")
            if link is None or hop > 200:
                break
            url = servers[hop % 2] + link.split(">", 1)[0].lstrip("<")
        inserting = False
        return seen

    _, seen = await asyncio.gather(insert(), walk())
    assert len(seen) == len(set(seen)), "an item showed up twice"
    assert seen == sorted(seen)
    assert set(first) <= set(seen), "an item there from the start was skipped"
    assert added, "nothing was inserted while walking"
