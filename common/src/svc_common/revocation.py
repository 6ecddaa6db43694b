"""Revoked token and session ids, kept in process and mirrored through Redis when configured."""

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from svc_common.revocation_redis import RedisMirror


class RevocationList:
    """Ids refused until they expire; every process that shares Redis sees every revocation.

    Checks are in-memory lookups, never a Redis round trip: with REDIS_URL set, a RedisMirror
    (imported only then) shares revocations through a sorted set and pub/sub. Without Redis
    the list is this process's alone.
    """

    def __init__(self, redis_url: str | None = None) -> None:
        self.redis_url = redis_url
        self.revoked: dict[str, float] = {}
        self.mirror: RedisMirror | None = None

    def is_revoked(self, *ids: str | None) -> bool:
        """Whether any of these ids was revoked (None is never revoked)."""
        revoked = self.revoked
        return any(i is not None and i in revoked for i in ids)

    def remember(self, token_id: str, until: float) -> bool:
        """Record locally; False if the id was already refused."""
        fresh = token_id not in self.revoked
        self.revoked[token_id] = max(until, self.revoked.get(token_id, 0.0))
        return fresh

    async def revoke(self, token_id: str, *, until: float) -> bool:
        """Refuse token_id until the epoch second `until`; False if it already was refused.

        With Redis, Redis decides between replicas: of two racing callers only one sees True.
        """
        fresh = self.remember(token_id, until)
        if self.mirror is None:
            return fresh
        return await self.mirror.share(token_id, until, fresh=fresh)

    def prune(self, now: float | None = None) -> None:
        """Forget ids whose tokens have expired anyway."""
        now = time.time() if now is None else now
        for token_id in [i for i, until in self.revoked.items() if until <= now]:
            del self.revoked[token_id]

    async def start(self) -> None:
        """Start following Redis, when configured (lifespan start)."""
        if self.redis_url:
            from svc_common.revocation_redis import RedisMirror  # noqa: PLC0415

            self.mirror = RedisMirror(self, self.redis_url)
            await self.mirror.start()

    async def close(self) -> None:
        """Stop following Redis (lifespan end)."""
        if self.mirror is not None:
            await self.mirror.close()
