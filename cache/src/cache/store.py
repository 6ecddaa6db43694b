"""Where cached values live: Redis, or a dict with expiry when Redis is not configured.

The Redis layout (value keys, the shared hit/miss hash) is svc_common.shared_cache, the same
contract the item servers count their lookups in.
"""

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from svc_common.shared_cache import (
    DATA_PREFIX,
    DEFAULT_NAMESPACE,
    STATS_KEY,
    Counts,
    data_key,
    hits_field,
    misses_field,
    namespace_of,
    parse_stats,
)

# GET, TTL and the namespace's hit or miss count in one round trip, atomically.
_GET_AND_COUNT = """
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
  return {value, redis.call('TTL', KEYS[1])}
end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
return false
"""
_UNLINK_BATCH = 500


@dataclass(frozen=True)
class Entry:
    """A cached value (JSON bytes) and its remaining lifetime in seconds."""

    value: bytes
    ttl: int


@dataclass(frozen=True)
class Stats:
    """Lookups per namespace, counted across every client of the store, and live keys."""

    counts: dict[str, Counts] = field(default_factory=dict)
    keys: dict[str, int] = field(default_factory=dict)

    @property
    def namespaces(self) -> list[str]:
        """Every namespace with lookups or keys."""
        return sorted(self.counts.keys() | self.keys.keys())

    @property
    def total(self) -> Counts:
        """Lookups of all namespaces together."""
        return Counts(
            hits=sum(c.hits for c in self.counts.values()),
            misses=sum(c.misses for c in self.counts.values()),
        )


class Store(Protocol):
    """What the routes need from a backend."""

    backend: str

    async def get(self, key: str) -> Entry | None: ...
    async def set(self, key: str, value: bytes, ttl: int) -> None: ...
    async def delete(self, key: str) -> bool: ...
    async def clear(self, namespace: str) -> int: ...
    async def stats(self) -> Stats: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


def _pattern(namespace: str) -> str:
    # Namespaces are letters, digits and _.@- (checked by the routes): no glob characters.
    return DATA_PREFIX + ("*" if namespace == DEFAULT_NAMESPACE else f"{namespace}:*")


def _key_namespace(raw: bytes) -> str:
    return namespace_of(raw[len(DATA_PREFIX) :].decode(errors="replace"))


class RedisStore:
    """Values under cache:data:<key>, counters in the shared cache:stats hash."""

    backend = "redis"

    def __init__(self, url: str) -> None:
        # One retry covers a pooled connection Redis dropped; an outage becomes a 503 at once.
        self.redis = Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 1)
        )
        self._get = self.redis.register_script(_GET_AND_COUNT)

    async def get(self, key: str) -> Entry | None:
        """The entry, counted as a hit or a miss of its namespace."""
        namespace = namespace_of(key)
        found = await self._get(
            keys=[data_key(key), STATS_KEY], args=[hits_field(namespace), misses_field(namespace)]
        )
        return Entry(value=found[0], ttl=int(found[1])) if found else None

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        """Store with expiry."""
        await self.redis.set(data_key(key), value, ex=ttl)

    async def delete(self, key: str) -> bool:
        """True when the key existed."""
        return bool(await self.redis.delete(data_key(key)))

    async def clear(self, namespace: str) -> int:
        """Remove every key of a namespace, walking them with SCAN (KEYS would block Redis)."""
        removed = 0
        batch: list[bytes] = []
        async for raw in self.redis.scan_iter(match=_pattern(namespace), count=1000):
            if _key_namespace(raw) == namespace:
                batch.append(raw)
            if len(batch) >= _UNLINK_BATCH:
                removed += await self.redis.unlink(*batch)
                batch.clear()
        if batch:
            removed += await self.redis.unlink(*batch)
        return removed

    async def stats(self) -> Stats:
        """Counters plus live keys per namespace (counted with SCAN, never KEYS)."""
        counts = parse_stats(await self.redis.hgetall(STATS_KEY))
        keys: Counter[str] = Counter()
        async for raw in self.redis.scan_iter(match=DATA_PREFIX + "*", count=1000):
            keys[_key_namespace(raw)] += 1
        return Stats(counts=counts, keys=dict(keys))

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
        self._hits: Counter[str] = Counter()
        self._misses: Counter[str] = Counter()

    def _live(self, key: str) -> tuple[float, bytes] | None:
        item = self._data.get(key)
        if item is not None and item[0] <= time.monotonic():
            del self._data[key]
            return None
        return item

    async def get(self, key: str) -> Entry | None:
        """The entry, counted as a hit or a miss of its namespace."""
        item = self._live(key)
        if item is None:
            self._misses[namespace_of(key)] += 1
            return None
        self._hits[namespace_of(key)] += 1
        return Entry(value=item[1], ttl=max(0, round(item[0] - time.monotonic())))

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        """Store with expiry."""
        self._data[key] = (time.monotonic() + ttl, value)

    async def delete(self, key: str) -> bool:
        """True when the key existed."""
        return self._data.pop(key, None) is not None

    async def clear(self, namespace: str) -> int:
        """Remove every key of a namespace."""
        doomed = [key for key in self._data if namespace_of(key) == namespace]
        for key in doomed:
            del self._data[key]
        return len(doomed)

    async def stats(self) -> Stats:
        """Counters and live keys per namespace; expired keys are dropped on the way."""
        for key in list(self._data):
            self._live(key)
        counts = {
            ns: Counts(hits=self._hits[ns], misses=self._misses[ns])
            for ns in sorted(self._hits.keys() | self._misses.keys())
        }
        return Stats(counts=counts, keys=dict(Counter(namespace_of(k) for k in self._data)))

    async def ping(self) -> None:
        """Always reachable."""

    async def close(self) -> None:
        """Nothing to release."""
