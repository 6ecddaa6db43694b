"""The item cache never turns a Redis problem into a failed request."""

from redis.asyncio import Redis
from server.cache import ItemCache


class Row:
    """One stored item: version 1 until written."""

    def __init__(self) -> None:
        self.version = 1
        self.loads = 0

    async def load(self) -> tuple[int, bytes] | None:
        self.loads += 1
        return self.version, b"{}"


async def test_without_redis_every_read_goes_to_the_database() -> None:
    cache, row = ItemCache(None, ttl=60), Row()
    assert await cache.read(1, row.load) == b"{}"
    assert await cache.read(1, row.load) == b"{}"
    await cache.invalidate(1, 2, added_or_removed=False)
    assert row.loads == 2


async def test_an_unreachable_redis_is_skipped_for_a_while_then_tried_again() -> None:
    dead = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)
    cache, row = ItemCache(dead, ttl=60, retry_after=60), Row()
    assert await cache.read(1, row.load) == b"{}"
    assert cache._down_until > 0, "reads skip Redis instead of paying a failed call each"
    await cache.invalidate(1, 2, added_or_removed=False)
    assert cache._pending == {1: 2}, "kept, to be replayed when Redis answers"
    assert await cache.read(1, row.load) == b"{}"
    assert row.loads == 2
    await dead.aclose()
