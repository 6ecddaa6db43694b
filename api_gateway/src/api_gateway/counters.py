"""Rate-limit counters in Redis, with concurrent hits sharing one pipelined round trip.

Every hit is still its own INCRBY, so counts stay exact across replicas; what is shared is
the trip. Hits that arrive while a pipeline is in flight wait for it and go together in the
next one, so under load a round trip serves many requests and costs one write and one read.
"""

import asyncio
from typing import Any

from redis.asyncio import Redis

# (key, window seconds, the waiting hit)
_Hit = tuple[str, int, "asyncio.Future[int]"]


class BatchedCounters:
    """INCRBY key 1 and EXPIRE key window NX (the window's TTL is set by its first hit)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pending: list[_Hit] = []
        self._in_flight: asyncio.Task[None] | None = None

    async def incr(self, key: str, window: int) -> int:
        """The key's count after this hit; raises what Redis raised (the caller falls back)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((key, window, future))
        if self._in_flight is None:
            self._in_flight = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            # Yield once first, so hits of the same loop iteration share the first trip too.
            await asyncio.sleep(0)
            while self._pending:
                batch, self._pending = self._pending, []
                await self._send(batch)
        finally:
            self._in_flight = None

    async def _send(self, batch: list[_Hit]) -> None:
        pipe: Any = self._redis.pipeline(transaction=False)
        for key, window, _ in batch:
            pipe.incrby(key, 1)
            pipe.expire(key, window, nx=True)
        try:
            results = await pipe.execute()
        except Exception as exc:  # every waiter learns it, and counts in process instead
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for _, _, future in batch:
                future.cancel()
            raise
        for n, (_, _, future) in enumerate(batch):
            if not future.done():
                future.set_result(int(results[2 * n]))

    async def close(self) -> None:
        """Wait for the trip in flight (lifespan end)."""
        if self._in_flight is not None:
            await asyncio.gather(self._in_flight, return_exceptions=True)
