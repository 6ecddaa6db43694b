"""Sharing a RevocationList through Redis: a sorted set for the record, pub/sub for news.

Imported only when REDIS_URL is set, so services without Redis never load the client.
"""

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from svc_common.redis_lost import REDIS_LOST

if TYPE_CHECKING:  # the list imports this module when it needs it, not the other way
    from svc_common.revocation import RevocationList

log = logging.getLogger(__name__)

KEY = "auth:revoked"
CHANNEL = "auth:revoked"
PRUNE_EVERY = 60.0


def fail_fast_redis(url: str, *, timeout: float = 0.5) -> Redis:
    """A client that gives up at once: callers fall back instead of waiting on a dead Redis."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=10,
    )


class RedisMirror:
    """Keeps a RevocationList in step with every other process on the same Redis.

    A (re)connection subscribes first, then reloads the whole set, so nothing published while
    this process was cut off is missed; what it revoked meanwhile is published then.
    """

    def __init__(self, revocations: "RevocationList", url: str) -> None:
        self.revocations = revocations
        self.redis = fail_fast_redis(url)
        self.connected = False
        # Revoked while Redis was unreachable: published as soon as it is back.
        self._unshared: set[str] = set()
        self._follower: asyncio.Task[None] | None = None

    async def share(self, token_id: str, until: float, *, fresh: bool) -> bool:
        """Tell every process; whether the id was new everywhere."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zadd(KEY, {token_id: until}, nx=True)
                pipe.publish(CHANNEL, f"{token_id} {until}")
                added, _ = await pipe.execute()
        except REDIS_LOST as exc:
            log.warning("revocation not shared yet (Redis unavailable): %s", exc)
            self._unshared.add(token_id)
            return fresh
        return fresh and bool(added)

    async def start(self) -> None:
        """Load what Redis knows (briefly), then follow it in the background."""
        with contextlib.suppress(*REDIS_LOST):
            await asyncio.wait_for(self._sync(), timeout=2.0)
        self._follower = asyncio.create_task(self._follow(), name="revocations")

    async def close(self) -> None:
        """Stop following and close the connections."""
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        await self.redis.aclose()

    async def _sync(self, *, reconnected: bool = False) -> None:
        """Share what was revoked while Redis was away, drop expired ids, load the rest.

        After a reconnection every id this process knows is written back too, so a Redis that
        restarted empty learns again what its clients remember.
        """
        now = time.time()
        local = self.revocations
        local.prune(now)
        pending = set(self._unshared)
        unshared = {i: local.revoked[i] for i in pending if i in local.revoked}
        known = dict(local.revoked) if reconnected else unshared
        async with self.redis.pipeline(transaction=False) as pipe:
            if known:
                pipe.zadd(KEY, known, gt=True)
            for token_id, until in unshared.items():
                pipe.publish(CHANNEL, f"{token_id} {until}")
            pipe.zremrangebyscore(KEY, "-inf", now)
            pipe.zrangebyscore(KEY, now, "+inf", withscores=True)
            results = await pipe.execute()
        self._unshared -= pending
        for member, score in results[-1]:
            local.remember(member.decode() if isinstance(member, bytes) else str(member), score)

    def _apply(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        token_id, _, until = text.partition(" ")
        with contextlib.suppress(ValueError):
            self.revocations.remember(token_id, float(until))

    async def _follow(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    await self._sync(reconnected=True)
                    if not self.connected:
                        log.info("revocation list following Redis")
                    self.connected, backoff = True, 0.5
                    await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except REDIS_LOST as exc:
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
