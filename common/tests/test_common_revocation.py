"""The revocation list in process (Redis-backed sharing is tested in tests/integration)."""

import asyncio
import time

import pytest
from svc_common.revocation import RevocationList


async def test_revoking_refuses_the_id_and_reports_whether_it_was_new() -> None:
    revocations = RevocationList()
    assert not revocations.is_revoked("a")
    assert await revocations.revoke("a", until=time.time() + 60)
    assert not await revocations.revoke("a", until=time.time() + 60)
    assert revocations.is_revoked("x", "a")
    assert not revocations.is_revoked(None, "b")


async def test_start_and_close_without_redis_are_harmless() -> None:
    revocations = RevocationList(None)
    await revocations.start()
    await revocations.revoke("a", until=time.time() + 60)
    await revocations.close()
    assert revocations.is_revoked("a")


async def test_a_cut_off_voids_what_the_user_was_issued_before_it_and_nothing_after() -> None:
    revocations = RevocationList()
    now = time.time()
    await revocations.cut_off("ana", at=now, until=now + 60)
    assert revocations.cut_off_before("ana", now - 0.001)
    assert not revocations.cut_off_before("ana", now)
    assert not revocations.cut_off_before("bob", now - 10)


def test_a_cut_off_heard_from_another_process_counts_and_the_latest_wins() -> None:
    # What the Redis mirror hands over: the id as another process wrote it.
    revocations = RevocationList()
    now = time.time()
    revocations.remember(f"cutoff:{now!r}:ana", now + 60)
    revocations.remember(f"cutoff:{now - 30!r}:ana", now + 30)
    assert revocations.cut_off_before("ana", now - 1)
    assert revocations.cutoffs["ana"] == (now, now + 60)


def test_pruning_forgets_cut_offs_that_outlived_every_token() -> None:
    revocations = RevocationList()
    now = time.time()
    revocations.remember(f"cutoff:{now - 100!r}:ana", now - 1)
    revocations.prune(now)
    assert revocations.cutoffs == {}
    assert not revocations.is_revoked(f"cutoff:{now - 100!r}:ana")


async def test_the_redis_follower_outlives_a_write_on_a_transport_redis_closed() -> None:
    # uvloop's RuntimeError, which redis-py lets through, once ended the follower for good.
    from svc_common.revocation_redis import RedisMirror  # noqa: PLC0415 - needs redis

    mirror = RedisMirror(RevocationList(), "redis://127.0.0.1:1/0")
    attempts = 0

    class Subscription:
        async def __aenter__(self) -> None:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")
            raise asyncio.CancelledError  # the second attempt: enough to know it went on

        async def __aexit__(self, *_: object) -> None:
            return None

    mirror.redis.pubsub = Subscription  # type: ignore[method-assign,assignment]
    with pytest.raises(asyncio.CancelledError):
        await mirror._follow()
    assert attempts == 2
    await mirror.redis.aclose()
