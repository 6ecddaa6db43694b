"""Revoked token and session ids, kept in process and mirrored through Redis when configured."""

import contextlib
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from svc_common.revocation_redis import RedisMirror

# A user's cut-off ("tokens issued before this instant are void", after a password change) is
# an id like any other, "cutoff:<epoch>:<username>", so Redis shares it with every process.
CUTOFF = "cutoff:"


class RevocationList:
    """Ids refused until they expire; every process that shares Redis sees every revocation.

    Checks are in-memory lookups, never a Redis round trip: with REDIS_URL set, a RedisMirror
    (imported only then) shares revocations through a sorted set and pub/sub. Without Redis
    the list is this process's alone.
    """

    def __init__(self, redis_url: str | None = None) -> None:
        self.redis_url = redis_url
        self.revoked: dict[str, float] = {}
        # username -> (cut-off epoch, until): read on every verification, so kept apart.
        self.cutoffs: dict[str, tuple[float, float]] = {}
        self.mirror: RedisMirror | None = None

    def is_revoked(self, *ids: str | None) -> bool:
        """Whether any of these ids was revoked (None is never revoked)."""
        revoked = self.revoked
        return any(i is not None and i in revoked for i in ids)

    def cut_off_before(self, username: str, issued_at: float) -> bool:
        """Whether a token of this user issued at `issued_at` predates the user's cut-off."""
        cutoff = self.cutoffs.get(username)
        return cutoff is not None and issued_at < cutoff[0]

    def remember(self, token_id: str, until: float) -> bool:
        """Record locally; False if the id was already refused."""
        fresh = token_id not in self.revoked
        self.revoked[token_id] = max(until, self.revoked.get(token_id, 0.0))
        if token_id.startswith(CUTOFF):
            at, _, username = token_id.removeprefix(CUTOFF).partition(":")
            with contextlib.suppress(ValueError):
                known = self.cutoffs.get(username, (0.0, 0.0))
                self.cutoffs[username] = (max(float(at), known[0]), max(until, known[1]))
        return fresh

    async def cut_off(self, username: str, *, at: float, until: float) -> None:
        """Refuse every token of `username` issued before `at`, until the epoch second `until`
        (the end of the longest-lived token issued before `at`)."""
        await self.revoke(f"{CUTOFF}{at!r}:{username}", until=until)

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
        for username in [u for u, (_, until) in self.cutoffs.items() if until <= now]:
            del self.cutoffs[username]

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
