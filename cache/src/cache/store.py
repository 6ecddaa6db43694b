"""Where cached values live: Redis, or a dict with expiry when Redis is not configured."""

import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

KEY_PREFIX = "cache:data:"
STATS_KEY = "cache:stats"

# GET, TTL and the hit/miss count in one round trip, atomically.
_GET_AND_COUNT = """
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('HINCRBY', KEYS[2], 'hits', 1)
  return {value, redis.call('TTL', KEYS[1])}
end
redis.call('HINCRBY', KEYS[2], 'misses', 1)
return false
"""


@dataclass(frozen=True)
class Entry:
    """A cached value (JSON bytes) and its remaining lifetime in seconds."""

    value: bytes
    ttl: int


@dataclass(frozen=True)
class Stats:
    """Counters shared by every client of the store."""

    hits: int
    misses: int
    keys: int

    @property
    def hit_ratio(self) -> float:
        """Hits over lookups, 0 before the first lookup."""
        lookups = self.hits + self.misses
        return round(self.hits / lookups, 4) if lookups else 0.0


class Store(Protocol):
    """What the routes need from a backend."""

    backend: str

    async def get(self, key: str) -> Entry | None: ...
    async def set(self, key: str, value: bytes, ttl: int) -> None: ...
    async def delete(self, key: str) -> bool: ...
    async def stats(self) -> Stats: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class RedisStore:
    """Values in Redis under cache:data:*, counters in the cache:stats hash."""

    backend = "redis"

    def __init__(self, url: str) -> None:
        self.redis = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._get = self.redis.register_script(_GET_AND_COUNT)

    async def get(self, key: str) -> Entry | None:
        """The entry, counted as a hit or a miss."""
        found = await self._get(keys=[KEY_PREFIX + key, STATS_KEY])
        return Entry(value=found[0], ttl=int(found[1])) if found else None

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        """Store with expiry."""
        await self.redis.set(KEY_PREFIX + key, value, ex=ttl)

    async def delete(self, key: str) -> bool:
        """True when the key existed."""
        return bool(await self.redis.delete(KEY_PREFIX + key))

    async def stats(self) -> Stats:
        """Counters plus the number of live keys (counted with SCAN, never KEYS)."""
        counts = await self.redis.hgetall(STATS_KEY)
        keys = 0
        async for _ in self.redis.scan_iter(match=KEY_PREFIX + "*", count=1000):
            keys += 1
        return Stats(
            hits=int(counts.get(b"hits", 0)), misses=int(counts.get(b"misses", 0)), keys=keys
        )

    async def ping(self) -> None:
        """Raise unless Redis answers."""
        await self.redis.ping()

    async def close(self) -> None:
        """Release the connection pool."""
        await self.redis.aclose()


class MemoryStore:
    """A per-process dict with lazy expiry, for running without Redis."""

    backend = "memory"

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, bytes]] = {}
        self._hits = 0
        self._misses = 0

    def _live(self, key: str) -> tuple[float, bytes] | None:
        item = self._data.get(key)
        if item is not None and item[0] <= time.monotonic():
            del self._data[key]
            return None
        return item

    async def get(self, key: str) -> Entry | None:
        """The entry, counted as a hit or a miss."""
        item = self._live(key)
        if item is None:
            self._misses += 1
            return None
        self._hits += 1
        return Entry(value=item[1], ttl=max(0, round(item[0] - time.monotonic())))

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        """Store with expiry."""
        self._data[key] = (time.monotonic() + ttl, value)

    async def delete(self, key: str) -> bool:
        """True when the key existed."""
        return self._data.pop(key, None) is not None

    async def stats(self) -> Stats:
        """Counters and live keys; expired ones are dropped on the way."""
        for key in list(self._data):
            self._live(key)
        return Stats(hits=self._hits, misses=self._misses, keys=len(self._data))

    async def ping(self) -> None:
        """Always reachable."""

    async def close(self) -> None:
        """Nothing to release."""
