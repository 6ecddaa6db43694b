"""The in-process store honours TTL and counts hits and misses."""

import time

import pytest
from cache.store import MemoryStore


async def test_values_expire_after_their_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now)
    await store.set("k", b"1", ttl=10)
    entry = await store.get("k")
    assert entry is not None
    assert entry.ttl == 10
    monkeypatch.setattr(time, "monotonic", lambda: now + 10.5)
    assert await store.get("k") is None


async def test_stats_count_hits_misses_and_live_keys() -> None:
    store = MemoryStore()
    await store.set("a", b"1", ttl=60)
    await store.get("a")
    await store.get("a")
    await store.get("b")
    stats = await store.stats()
    assert (stats.hits, stats.misses, stats.keys, stats.hit_ratio) == (2, 1, 1, 0.6667)


async def test_delete_reports_whether_the_key_existed() -> None:
    store = MemoryStore()
    await store.set("a", b"1", ttl=60)
    assert await store.delete("a")
    assert not await store.delete("a")
