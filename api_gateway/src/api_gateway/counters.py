"""Rate-limit counters far from their limit are counted here and added to Redis in batches.

A shared counter costs a Redis round trip per request. Kong's `sync_rate` trades that for a
short delay: hits are counted in process and pushed every so often. Here that holds only
while a counter is far from its limit. A counter's first hit in a window, and every hit once
the estimate passes half the limit, goes to Redis at once and is decided on the shared count.
What a count can lack is the hits other replicas took in the last SYNC_SECONDS while below
half the limit; one replica alone is exact.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

SYNC_SECONDS = 0.05
# Below this share of the limit, hits are counted in process.
SYNC_SHARE = 0.5

# incr(key, window seconds, amount) -> the shared count after adding amount.
Increment = Callable[[str, int, int], Awaitable[int]]


class _Counter:
    __slots__ = ("pending", "sending", "shared", "window", "window_end")

    def __init__(self, window: int, window_end: float) -> None:
        self.shared = 0  # the shared count as Redis last told it
        self.sending = 0  # sent to Redis, not answered yet
        self.pending = 0  # counted here, not sent yet
        self.window = window
        self.window_end = window_end

    @property
    def estimate(self) -> int:
        return self.shared + self.sending + self.pending


class SyncedCounters:
    """The counters of one process, synced to Redis through `incr`."""

    def __init__(self, incr: Increment) -> None:
        self._incr = incr
        self._counters: dict[str, _Counter] = {}
        self._sync: asyncio.Task[None] | None = None

    async def hit(self, key: str, *, window: int, window_end: float, limit: int) -> int:
        """Count one hit; the count (exact, or an estimate far below the limit)."""
        count = self.hit_now(key, limit=limit)
        if count is not None:
            return count
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = _Counter(window, window_end)
        return await self._send(counter, key)

    def hit_now(self, key: str, *, limit: int) -> int | None:
        """Count one hit in process when the counter is far below the limit: its estimate.
        None, and nothing counted, when the hit must go to Redis (hit() sends it)."""
        counter = self._counters.get(key)
        if counter is None or counter.estimate + 1 > limit * SYNC_SHARE:
            return None
        counter.pending += 1
        if self._sync is None:
            self._sync = asyncio.get_running_loop().create_task(self._sync_later())
        return counter.estimate

    def forget(self, key: str) -> None:
        """Drop what is counted here for key (its Redis key was cleared)."""
        self._counters.pop(key, None)

    def clear(self) -> None:
        """Drop everything (Redis is gone; counting goes on elsewhere)."""
        self._counters.clear()

    async def flush(self) -> None:
        """Send every pending hit now (lifespan end)."""
        if self._sync is not None:
            self._sync.cancel()
            self._sync = None
        await self._send_pending()

    async def _send(self, counter: _Counter, key: str, amount: int | None = None) -> int:
        if amount is None:
            amount, counter.pending = counter.pending + 1, 0
        counter.sending += amount
        try:
            count = await self._incr(key, counter.window, amount)
        finally:
            counter.sending -= amount
        # Answers may cross; the largest is the newest.
        counter.shared = max(counter.shared, count)
        return count

    async def _sync_later(self) -> None:
        try:
            await asyncio.sleep(SYNC_SECONDS)
        finally:
            self._sync = None
        await self._send_pending()

    async def _send_pending(self) -> None:
        sends = []
        for key, counter in self._counters.items():
            if counter.pending:
                amount, counter.pending = counter.pending, 0
                sends.append(self._send(counter, key, amount))
        # Each goes through the shared pipeline: one round trip for all of them.
        await asyncio.gather(*sends)
        now = time.time()
        self._counters = {k: c for k, c in self._counters.items() if c.window_end > now}
