"""Read-through cache of items and of their list pages in Redis: one round trip per hit, and
no stale read after a write.

The race every read-through cache has: a reader loads version 1 from the database, a writer
commits version 2 and invalidates, then the reader stores version 1 after the invalidation.
Here a writer leaves a fence (the newest committed version) beside the deleted entry, and a
fill is stored only if its version is not older than the fence, checked inside Redis. A fill
that took longer than the lock lifetime is dropped, so it can never outlive a fence.

Any write can change any page, so pages are kept under a generation that the same
invalidation moves on: a page loaded before a write is stored under the old generation,
which no reader asks for once the write is acknowledged.
"""

import asyncio
import itertools
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError
from svc_common.autopipeline import AutoPipeline
from svc_common.redis_lost import REDIS_LOST as REDIS_ERRORS
from svc_common.shared_cache import (
    ITEM_NAMESPACE,
    PAGE_NAMESPACE,
    STATS_KEY,
    data_key,
    hits_field,
    misses_field,
)

from server import cache_scripts as scripts

log = logging.getLogger(__name__)

LOOKUPS = Counter(
    "item_cache_lookups_total",
    "Item reads by how they were answered: hit, miss (loaded, then cached) or bypass (no Redis).",
    ["result"],
)
# Children looked up once: .labels() on every read costs a lock and a dict lookup each time.
_HIT, _MISS, _BYPASS = (LOOKUPS.labels(result) for result in ("hit", "miss", "bypass"))
PAGE_LOOKUPS = Counter(
    "item_page_cache_lookups_total",
    "Listings by how they were answered: hit, miss (loaded, then cached) or bypass (no Redis).",
    ["result"],
)
_PAGE_HIT, _PAGE_MISS, _PAGE_BYPASS = (
    PAGE_LOOKUPS.labels(result) for result in ("hit", "miss", "bypass")
)
GENERATION_KEY = f"cache:gen:{PAGE_NAMESPACE}"
ROWS_GENERATION_KEY = f"cache:gen:{PAGE_NAMESPACE}:rows"


Loader = Callable[[], Awaitable[tuple[int, bytes] | None]]
# Given the filter's total when it is known: (the page as stored, the filter's total).
PageLoader = Callable[[int | None], Awaitable[tuple[bytes, int]]]


class ItemCache:
    """Items as JSON under cache:data:itens:<id>, shared by every server instance."""

    def __init__(
        self,
        redis: Redis | None,
        *,
        ttl: float,
        jitter: float = 0.1,
        namespace: str = ITEM_NAMESPACE,
        page_ttl: float = 30.0,
        lock_ms: int = 3000,
        fence_ms: int = 60_000,
        max_wait: float = 1.0,
        retry_after: float = 1.0,
    ) -> None:
        self.redis = redis
        self.namespace = namespace
        self.ttl_ms = ttl * 1000
        # Short: pages of past generations are garbage until they expire.
        self.page_ttl_ms = int(page_ttl * 1000)
        self.jitter = jitter
        self.lock_ms = lock_ms
        self.fence_ms = fence_ms
        self.max_wait = max_wait
        self.retry_after = retry_after
        self._down_until = 0.0
        self._down = False
        # Invalidations Redis missed while unreachable: replayed before the cache is used again.
        self._pending: dict[int, int] = {}
        self._token_prefix = secrets.token_hex(8) + ":"
        self._reads = itertools.count()
        if redis is not None:
            # Lookups of the same moment share a round trip: the hot path of every read.
            self._pipeline = AutoPipeline(redis)
            self._lookup = redis.register_script(scripts.LOOKUP)
            self._fill = redis.register_script(scripts.FILL)
            self._invalidate = redis.register_script(scripts.INVALIDATE)
            self._page = redis.register_script(scripts.PAGE)

    def _keys(self, item_id: int) -> tuple[str, str, str]:
        key = f"{self.namespace}:{item_id}"
        return data_key(key), f"cache:fence:{key}", f"cache:lock:{key}"

    async def read(self, item_id: int, load: Loader) -> bytes | None:
        """The item's JSON from Redis, or from `load` (and then cached); None if there is none."""
        if not await self._usable():
            return await self._bypass(load)
        data, _, lock = self._keys(item_id)
        # Unique per read across instances: a random prefix per process and a counter.
        token = f"{self._token_prefix}{next(self._reads)}"
        args: list[str | int] = [
            token,
            self.lock_ms,
            hits_field(self.namespace),
            misses_field(self.namespace),
        ]
        deadline = time.monotonic() + self.max_wait
        delay = 0.005
        while True:
            try:
                found = await self._lookup_once([data, lock, STATS_KEY], args)
            except REDIS_ERRORS as exc:
                self._trip(exc)
                return await self._bypass(load)
            self._mark_up()
            if isinstance(found, bytes):
                _HIT.inc()
                return found
            if found == 1:
                return await self._load_and_fill(item_id, load, token, counted=True)
            if time.monotonic() >= deadline:
                # The other loader is slow (or gone): load it ourselves rather than wait more.
                return await self._load_and_fill(item_id, load, token, counted=False)
            # Someone else is loading this item (a stampede on a hot key): wait for their fill.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _lookup_once(self, keys: list[str], args: list[str | int]) -> object:
        return await self._run(self._lookup, keys, args)

    async def _run(self, script: AsyncScript, keys: list[str], args: list[str | int]) -> object:
        """A script, in the round trip shared with the other requests of the moment."""
        (found,) = await self._pipeline.run(("EVALSHA", script.sha, len(keys), *keys, *args))
        if isinstance(found, NoScriptError):
            # Redis lost its scripts (a restart): this call loads it again.
            return await script(keys=keys, args=args)
        if isinstance(found, Exception):
            raise found
        return found

    async def read_page(self, key: str, filter_key: str, load: PageLoader) -> bytes:
        """A listing's stored page from Redis, or from `load` (and then stored).

        A miss passes `load` the total of the page's filter when another page of it stored
        one under this generation: counting every match is what a page costs most on a big
        table, and it is the same for every page of a walk.
        """
        if not await self._usable():
            _PAGE_BYPASS.inc()
            return (await load(None))[0]
        prefix = data_key(f"{PAGE_NAMESPACE}:{key}:")
        count_prefix = data_key(f"{PAGE_NAMESPACE}:count:{filter_key}:")
        args = [prefix, hits_field(PAGE_NAMESPACE), misses_field(PAGE_NAMESPACE), count_prefix]
        args.append("1" if not filter_key else "")
        keys = [GENERATION_KEY, STATS_KEY, ROWS_GENERATION_KEY]
        try:
            found = await self._run(self._page, keys, list(args))
        except REDIS_ERRORS as exc:
            self._trip(exc)
            _PAGE_BYPASS.inc()
            return (await load(None))[0]
        self._mark_up()
        assert isinstance(found, list)
        generation, stored, count, counted = (bytes(part).decode("latin-1") for part in found)
        if stored:
            _PAGE_HIT.inc()
            return bytes(found[1])
        _PAGE_MISS.inc()
        page, total = await load(int(count) if count else None)
        ttl = self.page_ttl_ms
        commands: list[tuple[str | bytes | int, ...]] = [
            ("SET", prefix + generation, page, "PX", ttl)
        ]
        if not count:
            commands.append(("SET", count_prefix + counted, total, "PX", ttl))
        try:
            for outcome in await self._pipeline.run(*commands):
                if isinstance(outcome, Exception):
                    raise outcome
        except REDIS_ERRORS as exc:
            self._trip(exc)
        return page

    async def _bypass(self, load: Loader) -> bytes | None:
        _BYPASS.inc()
        found = await load()
        return found[1] if found else None

    async def _load_and_fill(
        self, item_id: int, load: Loader, token: str, *, counted: bool
    ) -> bytes | None:
        _MISS.inc()
        data, fence, lock = self._keys(item_id)
        started = time.monotonic()
        found = None
        try:
            found = await load()
        finally:
            version, value = found if found else (0, b"")
            # A load slower than the lock may predate a fence that has expired since: drop it.
            if time.monotonic() - started > self.lock_ms / 1000:
                value = b""
            jitter = random.uniform(0, self.jitter)  # noqa: S311 - spreads expiry, not a secret
            ttl = int(self.ttl_ms * (1 + jitter))
            count = "" if counted else misses_field(self.namespace)
            try:
                await self._fill(
                    keys=[data, fence, lock, STATS_KEY], args=[version, value, ttl, token, count]
                )
            except REDIS_ERRORS as exc:
                self._trip(exc)
        return found[1] if found else None

    async def invalidate(self, item_id: int, version: int, *, added_or_removed: bool) -> None:
        """After a committed write of `version` (deletes pass the deleted version + 1);
        `added_or_removed` for a create or a delete, which change how many items there are."""
        if self.redis is None:
            return
        # Tried even while reads skip Redis: a blip on this instance alone must not leave a
        # stale entry that the other instances would go on serving.
        try:
            await self._send_invalidation(item_id, version, added_or_removed=added_or_removed)
        except REDIS_ERRORS as exc:
            # Kept for replay; a later, newer invalidation of the same item does no harm to
            # it (fences only rise).
            self._pending[item_id] = max(version, self._pending.get(item_id, 0))
            self._trip(exc)
            return
        self._mark_up()

    async def _send_invalidation(
        self, item_id: int, version: int, *, added_or_removed: bool
    ) -> None:
        # In the round trip shared with the other writes and reads of the moment.
        data, fence, _ = self._keys(item_id)
        keys = [data, fence, GENERATION_KEY, ROWS_GENERATION_KEY]
        args = [version, self.fence_ms, "1" if added_or_removed else ""]
        await self._run(self._invalidate, keys, args)

    async def _replay(self) -> bool:
        """Send the invalidations Redis missed; False (and Redis counted as down) if that fails."""
        try:
            for item_id, version in list(self._pending.items()):
                # Whether it added or removed an item is not kept: moving the totals on
                # too costs one count, never a wrong one.
                await self._send_invalidation(item_id, version, added_or_removed=True)
                if self._pending.get(item_id) == version:
                    del self._pending[item_id]
        except REDIS_ERRORS as exc:
            self._trip(exc)
            return False
        self._mark_up()
        return True

    async def _usable(self) -> bool:
        if self.redis is None or time.monotonic() < self._down_until:
            return False
        return not self._pending or await self._replay()

    def _mark_up(self) -> None:
        if self._down:
            self._down = False
            log.info("redis reachable again: item cache back in use")

    def _trip(self, exc: BaseException) -> None:
        # Skip Redis for a while instead of paying a failed call on every request.
        self._down_until = time.monotonic() + self.retry_after
        if not self._down:
            self._down = True
            log.warning("redis unreachable, items come from the database: %r", exc)

    async def replay_forever(self, interval: float = 0.5) -> None:
        """Background task: deliver missed invalidations as soon as Redis answers again."""
        while True:
            await asyncio.sleep(interval)
            if self._pending and time.monotonic() >= self._down_until:
                await self._replay()

    async def ping(self) -> dict[str, object]:
        """Health detail for /saude (not critical: items still come from the database)."""
        if self.redis is None:
            return {"status": "disabled"}
        await self.redis.ping()
        return {"status": "up", "pending_invalidations": len(self._pending)}
