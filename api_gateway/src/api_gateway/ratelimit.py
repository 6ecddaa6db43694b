"""Rate limits with the `limits` library: clock-aligned windows shared through Redis.

Each request costs one INCRBY in Redis, sent in a pipeline shared with the requests that
arrive at the same time (svc_common.autopipeline); RATE_LIMIT's counters, while far from the
limit, are added up in process and sent every 50 ms instead (counters.py). The window is
aligned to the clock, as Kong's are, so the reset time is known without asking Redis. When
Redis is unset, or stops answering, counting goes on in process and Redis is tried again a
second later.
"""

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.errors import StorageError
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.responses import Response
from svc_common.auth import Principal
from svc_common.autopipeline import AutoPipeline
from svc_common.envelope import error_response
from svc_common.redis_lost import REDIS_LOST

from api_gateway.counters import SyncedCounters
from api_gateway.forwarded import limited_address

log = logging.getLogger(__name__)

REDIS_RETRY_SECONDS = 1.0
REDIS_TIMEOUT_SECONDS = 0.25
KEY_PREFIX = "ratelimit"
KEY_CACHE_SIZE = 10_000


@dataclass(slots=True)
class Decision:
    """The outcome of one hit, and what the client is told about it."""

    policy: str
    allowed: bool
    limit: int
    remaining: int
    window: int
    reset_after: int

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """IETF RateLimit/RateLimit-Policy (draft 09), X-RateLimit-*, and Retry-After on 429,
        as (lower-case name, value) bytes: what the wire carries, built once per request."""
        policy = self.policy
        headers = [
            (b"ratelimit-policy", f'"{policy}";q={self.limit};w={self.window}'.encode()),
            (b"ratelimit", f'"{policy}";r={self.remaining};t={self.reset_after}'.encode()),
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(int(time.time()) + self.reset_after).encode()),
        ]
        if not self.allowed:
            headers.append((b"retry-after", str(self.reset_after).encode()))
        return headers

    def headers(self) -> dict[str, str]:
        """raw_headers() as a Response's headers argument takes them."""
        return {_TITLES[name]: value.decode() for name, value in self.raw_headers()}


_TITLES = {
    b"ratelimit-policy": "RateLimit-Policy",
    b"ratelimit": "RateLimit",
    b"x-ratelimit-limit": "X-RateLimit-Limit",
    b"x-ratelimit-remaining": "X-RateLimit-Remaining",
    b"x-ratelimit-reset": "X-RateLimit-Reset",
    b"retry-after": "Retry-After",
}


# The scope key of a decision the lane made for a request it hands to the ASGI path.
DECIDED = "rate_limit_decision"


def caller_key(principal: Principal | None, client_ip: str) -> str:
    """Whose quota a request spends: `user:<name>` for a verified token, else `ip:<address>`
    (an IPv6 client's /64: forwarded.limited_address), so forged tokens cannot spend somebody
    else's quota."""
    if principal is not None:
        return "user:" + principal.username
    return "ip:" + limited_address(client_ip)


def limited(decision: Decision) -> Response:
    """The 429 of a request over its limit, with the limit's headers and Retry-After."""
    return error_response(429, "Rate limit exceeded", headers=decision.headers())


def _redis_storage(pool: ConnectionPool, url: str) -> RedisStorage:
    options = cast(dict[str, Any], {"connection_pool": pool})
    return RedisStorage(
        "async+" + url,
        implementation="redispy",
        wrap_exceptions=True,
        key_prefix=KEY_PREFIX,
        **options,
    )


class RateLimiter:
    """Named policies (`default`, `login`) counted per key."""

    def __init__(
        self,
        policies: Mapping[str, RateLimitItem],
        redis_url: str | None,
        *,
        batched: frozenset[str] = frozenset({"default"}),
    ) -> None:
        self.policies = dict(policies)
        # Policies whose counters may sync in batches while far from the limit (counters.py);
        # login attempts are always counted at once.
        self.batched = batched
        self._synced: SyncedCounters | None = None
        # Storage keys by (policy, key, window): `limits` builds one in several steps.
        self._keys: dict[tuple[str, str, int], str] = {}
        self.memory = MemoryStorage()
        self.redis: RedisStorage | None = None
        self._pool: ConnectionPool | None = None
        self._pipeline: AutoPipeline | None = None
        if redis_url:
            # Short timeouts and no retries: a slow Redis must not slow requests down.
            self._pool = ConnectionPool.from_url(
                redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )
            self.redis = _redis_storage(self._pool, redis_url)
            self._pipeline = AutoPipeline(Redis(connection_pool=self._pool))
            self._synced = SyncedCounters(self._incr)
        self._redis_retry_at = 0.0

    async def close(self) -> None:
        """Send the hits counted in process, close the Redis connections (lifespan end)."""
        if self._synced is not None and self._redis_usable():
            await self._synced.flush()
        if self._pipeline is not None:
            await self._pipeline.close()
        if self._pool is not None:
            await self._pool.aclose()

    @property
    def backend(self) -> str:
        """Where counters live right now."""
        if self.redis is None:
            return "memory"
        return "redis" if time.monotonic() >= self._redis_retry_at else "memory (redis down)"

    async def hit(self, policy: str, key: str) -> Decision:
        """Count one request against policy for key."""
        item, index, storage_key = self._window(policy, key)
        window = item.get_expiry()
        if self._synced is not None and policy in self.batched and self._redis_usable():
            count = await self._synced.hit(
                storage_key, window=window, window_end=(index + 1) * window, limit=item.amount
            )
        else:
            count = await self._incr(storage_key, window)
        return self._decision(policy, item, index, count)

    def hit_now(self, policy: str, key: str) -> Decision | None:
        """hit() when it needs no await (a batched counter far from its limit); else None,
        and nothing counted."""
        if self._synced is None or policy not in self.batched or not self._redis_usable():
            return None
        item, index, storage_key = self._window(policy, key)
        count = self._synced.hit_now(storage_key, limit=item.amount)
        return None if count is None else self._decision(policy, item, index, count)

    def _window(self, policy: str, key: str) -> tuple[RateLimitItem, int, str]:
        """The policy, the current window's index and the storage key of key's counter."""
        item = self.policies[policy]
        index = int(time.time() // item.get_expiry())
        storage_key = self._keys.get((policy, key, index))
        if storage_key is None:
            if len(self._keys) >= KEY_CACHE_SIZE:
                self._keys.clear()
            storage_key = self._keys[policy, key, index] = item.key_for(policy, key, index)
        return item, index, storage_key

    @staticmethod
    def _decision(policy: str, item: RateLimitItem, index: int, count: int) -> Decision:
        window = item.get_expiry()
        return Decision(
            policy=policy,
            allowed=count <= item.amount,
            limit=item.amount,
            remaining=max(0, item.amount - count),
            window=window,
            reset_after=max(1, math.ceil((index + 1) * window - time.time())),
        )

    async def reset(self, policy: str, key: str) -> None:
        """Forget key's count in the current window (a successful login clears its failures)."""
        item = self.policies[policy]
        storage_key = item.key_for(policy, key, int(time.time() // item.get_expiry()))
        await self.memory.clear(storage_key)
        if self._synced is not None:
            self._synced.forget(storage_key)
        if self._redis_usable():
            try:
                await cast(Storage, self.redis).clear(storage_key)
            except (StorageError, *REDIS_LOST) as exc:
                self._redis_failed(exc)

    async def ping(self) -> dict[str, str]:
        """Health detail; raises when configured Redis does not answer."""
        if self.redis is not None and not await self.redis.check():
            raise ConnectionError("redis does not answer")
        return {"status": "up", "backend": self.backend}

    def _redis_usable(self) -> bool:
        return self.redis is not None and time.monotonic() >= self._redis_retry_at

    def _redis_failed(self, exc: Exception) -> None:
        if time.monotonic() >= self._redis_retry_at:
            log.warning("rate limits counted in process: Redis unavailable (%s)", exc)
        if self._synced is not None:
            self._synced.clear()
        self._redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS

    async def _incr(self, key: str, window: int, amount: int = 1) -> int:
        if self._redis_usable():
            try:
                # The key the `limits` storage uses, so reset() and incr() name the same one;
                # EXPIRE NX gives the window its lifetime on its first hit only.
                full = f"{KEY_PREFIX}:{key}"
                pipeline = cast(AutoPipeline, self._pipeline)
                count, expiry = await pipeline.run(
                    ("INCRBY", full, amount), ("EXPIRE", full, window, "NX")
                )
                # A Redis older than 7 refuses EXPIRE NX: a key left without a lifetime would
                # never reset, so count in process instead (logged by _redis_failed).
                for answer in (count, expiry):
                    if isinstance(answer, Exception):
                        raise answer
                return int(count)
            except (StorageError, *REDIS_LOST) as exc:
                self._redis_failed(exc)
        return await self.memory.incr(key, window, amount)
