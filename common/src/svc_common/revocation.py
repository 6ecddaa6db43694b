"""Revoked token and session ids, kept in process and mirrored through Redis when configured."""

import asyncio
import contextlib
import logging
import time

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY = "auth:revoked"
CHANNEL = "auth:revoked"
PRUNE_EVERY = 60.0


def fail_fast_redis(url: str, *, timeout: float = 0.5) -> "Redis":
    """A client that gives up at once: callers fall back instead of waiting on a dead Redis."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=10,
    )


class RevocationList:
    """Ids refused until they expire; every process that shares Redis sees every revocation.

    Checks are in-memory set lookups, never a Redis round trip: revocations arrive through
    pub/sub, and a (re)connection reloads the whole sorted set, so nothing published while a
    process was cut off is missed. Without Redis the list is this process's alone.
    """

    def __init__(self, redis_url: str | None = None) -> None:
        self.redis_url = redis_url
        self._revoked: dict[str, float] = {}
        # Revoked while Redis was unreachable: published as soon as it is back.
        self._unshared: set[str] = set()
        self._redis: Redis | None = None
        self._follower: asyncio.Task[None] | None = None
        self.connected = False

    def is_revoked(self, *ids: str | None) -> bool:
        """Whether any of these ids was revoked (None is never revoked)."""
        revoked = self._revoked
        return any(i is not None and i in revoked for i in ids)

    async def revoke(self, token_id: str, *, until: float) -> bool:
        """Refuse token_id until the epoch second `until`; False if it already was refused."""
        fresh = token_id not in self._revoked
        self._revoked[token_id] = max(until, self._revoked.get(token_id, 0.0))
        if self._redis is None:
            return fresh
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(KEY, {token_id: until}, nx=True)
                pipe.publish(CHANNEL, f"{token_id} {until}")
                added, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("revocation not shared yet (Redis unavailable): %s", exc)
            self._unshared.add(token_id)
            return fresh
        # Redis decides between replicas: of two racing callers only one sees a fresh id.
        return fresh and bool(added)

    async def start(self) -> None:
        """Load what Redis knows, then follow new revocations in the background."""
        if not self.redis_url:
            return
        self._redis = fail_fast_redis(self.redis_url)
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await asyncio.wait_for(self._sync(), timeout=2.0)
        self._follower = asyncio.create_task(self._follow(), name="revocations")

    async def close(self) -> None:
        """Stop following and close the connections."""
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        if self._redis is not None:
            await self._redis.aclose()

    async def _sync(self, *, reconnected: bool = False) -> None:
        """Share what was revoked while Redis was away, drop expired ids, load the rest.

        After a reconnection every id this process knows is written back too, so a Redis that
        restarted empty learns again what its clients remember.
        """
        assert self._redis is not None
        now = time.time()
        self._prune(now)
        unshared = {i: self._revoked[i] for i in self._unshared if i in self._revoked}
        known = dict(self._revoked) if reconnected else unshared
        async with self._redis.pipeline(transaction=False) as pipe:
            if known:
                pipe.zadd(KEY, known, gt=True)
            for token_id, until in unshared.items():
                pipe.publish(CHANNEL, f"{token_id} {until}")
            pipe.zremrangebyscore(KEY, "-inf", now)
            pipe.zrangebyscore(KEY, now, "+inf", withscores=True)
            results = await pipe.execute()
        self._unshared -= set(unshared)
        for member, score in results[-1]:
            key = member.decode() if isinstance(member, bytes) else str(member)
            self._revoked[key] = max(float(score), self._revoked.get(key, 0.0))

    def _prune(self, now: float) -> None:
        for token_id in [i for i, until in self._revoked.items() if until <= now]:
            del self._revoked[token_id]
            self._unshared.discard(token_id)

    def _apply(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        token_id, _, until = text.partition(" ")
        with contextlib.suppress(ValueError):
            self._revoked[token_id] = max(float(until), self._revoked.get(token_id, 0.0))

    async def _follow(self) -> None:
        assert self._redis is not None
        backoff = 0.5
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    # Subscribed, then loaded: a revocation in between is seen twice, not lost.
                    await self._sync(reconnected=True)
                    if not self.connected:
                        log.info("revocation list following Redis")
                    self.connected, backoff = True, 0.5
                    await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                if self.connected:
                    log.warning("revocation list lost Redis, retrying: %s", exc)
                self.connected = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _listen(self, pubsub: PubSub) -> None:
        pruned = time.monotonic()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None and message.get("type") == "message":
                self._apply(message["data"])
            if time.monotonic() - pruned > PRUNE_EVERY:
                await self._sync()
                pruned = time.monotonic()
