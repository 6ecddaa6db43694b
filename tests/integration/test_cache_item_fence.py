"""The servers' item cache against a real Redis: fenced fills, one loader per stampede."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from server.cache import GENERATION_KEY, ROWS_GENERATION_KEY, ItemCache
from svc_common.shared_cache import STATS_KEY, hits_field, misses_field


class CountingRedis(Redis):
    """Counts round trips: a command (a Lua script call is one), or a pipeline however full."""

    commands = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        type(self).commands += 1
        return await super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        sent = pipe.execute

        async def execute(raise_on_error: bool = True) -> Any:
            type(self).commands += 1
            return await sent(raise_on_error=raise_on_error)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    redis = CountingRedis.from_url(redis_url)
    yield redis
    await redis.aclose()


def _cache(redis: Redis, **options: Any) -> ItemCache:
    # A namespace of its own, so the stack's item cache in the same database is not touched.
    return ItemCache(redis, ttl=60, namespace=f"test{uuid.uuid4().hex[:8]}", **options)


class Table:
    """A one-row stand-in for the itens table: a version and a name."""

    def __init__(self) -> None:
        self.version = 1
        self.loads = 0

    def value(self) -> bytes:
        return f'{{"version": {self.version}}}'.encode()

    async def load(self) -> tuple[int, bytes] | None:
        self.loads += 1
        return self.version, self.value()


async def _counts(redis: Redis, namespace: str) -> tuple[int, int]:
    hits, misses = await redis.hmget(STATS_KEY, [hits_field(namespace), misses_field(namespace)])
    return int(hits or 0), int(misses or 0)


async def test_a_fill_loaded_before_a_write_is_not_stored_after_its_invalidation(
    client: Redis,
) -> None:
    cache, table = _cache(client), Table()

    async def load_then_lose_the_race() -> tuple[int, bytes] | None:
        loaded = await table.load()
        # A writer commits version 2 and invalidates while this reader still holds version 1.
        table.version = 2
        await cache.invalidate(1, 2, added_or_removed=False)
        return loaded

    assert await cache.read(1, load_then_lose_the_race) == b'{"version": 1}'
    assert await cache.read(1, table.load) == b'{"version": 2}', "version 1 must not be cached"
    assert await cache.read(1, table.load) == b'{"version": 2}'
    assert table.loads == 2, "version 2 was cached by the second read"


async def test_invalidations_from_writers_finishing_out_of_order_keep_the_newest_fence(
    client: Redis,
) -> None:
    cache, table = _cache(client), Table()
    table.version = 3
    await cache.invalidate(1, 3, added_or_removed=False)
    # The slower of two writers reports last.
    await cache.invalidate(1, 2, added_or_removed=False)

    async def stale() -> tuple[int, bytes] | None:
        return 2, b'{"version": 2}'

    assert await cache.read(1, stale) == b'{"version": 2}'
    assert await cache.read(1, table.load) == b'{"version": 3}'


async def test_a_stampede_on_one_cold_key_loads_it_once(client: Redis) -> None:
    cache, table = _cache(client), Table()

    async def slow_load() -> tuple[int, bytes] | None:
        await asyncio.sleep(0.2)
        return await table.load()

    results = await asyncio.gather(*(cache.read(7, slow_load) for _ in range(50)))
    assert set(results) == {b'{"version": 1}'}
    assert table.loads == 1
    assert await _counts(client, cache.namespace) == (49, 1)


async def test_a_hit_is_one_redis_round_trip(client: Redis) -> None:
    cache, table = _cache(client), Table()
    await cache.read(1, table.load)
    before = CountingRedis.commands
    assert await cache.read(1, table.load) == table.value()
    assert CountingRedis.commands - before == 1
    assert await _counts(client, cache.namespace) == (1, 1)


async def test_a_deleted_item_is_not_brought_back_by_a_reader_that_loaded_it_before(
    client: Redis,
) -> None:
    cache = _cache(client)

    async def load_then_see_it_deleted() -> tuple[int, bytes] | None:
        # The delete of version 1 commits meanwhile.
        await cache.invalidate(5, 1 + 1, added_or_removed=True)
        return 1, b'{"version": 1}'

    async def gone() -> tuple[int, bytes] | None:
        return None

    await cache.read(5, load_then_see_it_deleted)
    assert await cache.read(5, gone) is None


async def test_reads_and_writes_go_on_without_redis_and_missed_invalidations_are_replayed(
    client: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, reader, table = _cache(client), _cache(client), Table()
    reader.namespace = writer.namespace  # two instances, one shared cache
    await reader.read(1, table.load)

    async def unreachable(*_: Any, **__: Any) -> Any:
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(writer, "_send_invalidation", unreachable)
    table.version = 2
    # Acknowledged although Redis could not be told.
    await writer.invalidate(1, 2, added_or_removed=False)
    monkeypatch.setattr(writer, "_lookup_once", unreachable)
    assert await writer.read(1, table.load) == table.value(), "served from the database"
    monkeypatch.undo()
    writer._down_until = 0  # Redis is back
    assert await writer.read(1, table.load) == table.value()
    assert await reader.read(1, table.load) == table.value(), "the missed invalidation was replayed"


async def test_an_update_moves_the_pages_on_but_keeps_the_unfiltered_total(client: Redis) -> None:
    cache = _cache(client)

    async def generations() -> list[int]:
        return [int(await client.get(key) or 0) for key in (GENERATION_KEY, ROWS_GENERATION_KEY)]

    pages, rows = await generations()
    await cache.invalidate(1, 2, added_or_removed=False)
    assert await generations() == [pages + 1, rows]
    await cache.invalidate(1, 3, added_or_removed=True)
    assert await generations() == [pages + 2, rows + 1]


async def test_a_page_miss_is_given_the_total_a_page_of_the_same_filter_stored(
    client: Redis,
) -> None:
    cache, tag = _cache(client), uuid.uuid4().hex
    given: list[int | None] = []

    async def load(total: int | None) -> tuple[bytes, int]:
        given.append(total)
        return b"7\n\n\n[]", 7

    await cache.read_page(f"q={tag}&limit=1", f"q={tag}", load)
    await cache.read_page(f"q={tag}&limit=2", f"q={tag}", load)
    await cache.read_page(f"q={tag}&limit=1", f"q={tag}", load)  # a hit: not loaded
    assert given == [None, 7]
    await cache.invalidate(1, 2, added_or_removed=False)  # may change what the filter matches
    await cache.read_page(f"q={tag}&limit=3", f"q={tag}", load)
    assert given == [None, 7, None]
