"""The in-process store honours TTL and counts hits and misses."""

import time

import pytest
from cache.store import MemoryStore
from svc_common.shared_cache import Counts


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


async def test_stats_count_hits_misses_and_live_keys_per_namespace() -> None:
    store = MemoryStore()
    await store.set("a", b"1", ttl=60)
    await store.set("produto:1", b"1", ttl=60)
    await store.get("a")
    await store.get("a")
    await store.get("b")
    await store.get("produto:2")
    stats = await store.stats()
    assert stats.counts == {"default": Counts(2, 1), "produto": Counts(0, 1)}
    assert stats.keys == {"default": 1, "produto": 1}
    assert (stats.total.hits, stats.total.misses) == (2, 2)


async def test_clearing_a_namespace_leaves_the_others() -> None:
    store = MemoryStore()
    for key in ("produto:1", "produto:2", "pedido:1", "solto"):
        await store.set(key, b"1", ttl=60)
    assert await store.clear("produto") == 2
    assert (await store.stats()).keys == {"pedido": 1, "default": 1}
    assert await store.clear("default") == 1


async def test_delete_reports_whether_the_key_existed() -> None:
    store = MemoryStore()
    await store.set("a", b"1", ttl=60)
    assert await store.delete("a")
    assert not await store.delete("a")
