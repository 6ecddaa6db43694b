"""Counters that sync to Redis in batches while far from their limit (a dict stands in)."""

import asyncio
import random

from api_gateway.counters import SYNC_SECONDS, SyncedCounters


class SharedStore:
    """What Redis does for the counters: INCRBY, recorded."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.calls: list[int] = []

    async def incr(self, key: str, window: int, amount: int) -> int:
        await asyncio.sleep(0)  # a round trip: other hits may run meanwhile
        self.calls.append(amount)
        self.counts[key] = self.counts.get(key, 0) + amount
        return self.counts[key]


def counters(store: SharedStore) -> SyncedCounters:
    return SyncedCounters(store.incr)


async def hit(replica: SyncedCounters, limit: int) -> int:
    return await replica.hit("k", window=60, window_end=1e12, limit=limit)


async def test_far_from_the_limit_hits_reach_redis_together_within_the_sync_interval() -> None:
    store = SharedStore()
    replica = counters(store)
    answers = [await hit(replica, 1000) for _ in range(10)]
    assert answers == list(range(1, 11)), "one replica's estimate is exact"
    assert store.calls == [1], "only the window's first hit went out at once"
    await asyncio.sleep(SYNC_SECONDS * 3)
    assert store.calls == [1, 9]
    assert store.counts["k"] == 10


async def test_past_half_the_limit_every_hit_is_counted_in_redis_at_once() -> None:
    store = SharedStore()
    replica = counters(store)
    answers = [await hit(replica, 6) for _ in range(8)]
    assert answers == [1, 2, 3, 4, 5, 6, 7, 8]
    # Hits 2 and 3 were counted here (at most half the limit); hit 4 took them along.
    assert store.calls == [1, 3, 1, 1, 1, 1]
    assert store.counts["k"] == 8, "nothing is left unsent once the limit is near"


async def test_replicas_taking_turns_are_held_to_the_limit() -> None:
    for limit in (2, 5, 6, 10, 31):
        store = SharedStore()
        a, b = counters(store), counters(store)
        answers = [await hit(replica, limit) for _ in range(2 * limit) for replica in (a, b)]
        assert sum(count <= limit for count in answers) == limit, (limit, answers)


async def test_every_hit_reaches_redis_within_the_sync_interval() -> None:
    rng = random.Random(7)
    store = SharedStore()
    replicas = [counters(store), counters(store)]
    for _ in range(500):
        await hit(rng.choice(replicas), 10_000)
    await asyncio.sleep(SYNC_SECONDS * 3)
    assert store.counts["k"] == 500


async def test_flush_sends_what_is_pending_at_once() -> None:
    store = SharedStore()
    replica = counters(store)
    for _ in range(5):
        await hit(replica, 1000)
    await replica.flush()
    assert store.counts["k"] == 5
