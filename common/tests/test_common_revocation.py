"""The revocation list in process (Redis-backed sharing is tested in tests/integration)."""

import time

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
