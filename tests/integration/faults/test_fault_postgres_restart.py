"""PostgreSQL restarted under load: envelope 503s while it is down, then full recovery."""

import asyncio
import time
from collections.abc import Callable

import httpx

from tests.integration.faults.conftest import monitor_states, steady_load, stored_ids, until
from tests.integration.faults.dependencies import PrivatePostgres
from tests.integration.stack import Stack

# The bound: every request succeeds again within this long after PostgreSQL returns.
RECOVERY_BOUND = 5.0
OUTAGE = 3.0


def balancer_states(stack: Stack) -> list[str]:
    """The balancer's view of its backends."""
    status = httpx.get(f"{stack.url('load_balancer')}/status", timeout=5).json()
    return [b["state"] for b in status["data"]["backends"]]


async def test_postgres_restart_under_load_is_envelope_503s_then_recovers_keeping_every_write(
    healthy: Stack, private_postgres: PrivatePostgres, say: Callable[[str], None]
) -> None:
    stack = healthy
    async with steady_load(stack) as traffic:
        await until(lambda: len(traffic.acknowledged) >= 10)
        await asyncio.to_thread(private_postgres.stop)
        down_at = time.monotonic()
        # Down long enough for the balancer and the monitor to see it, as a real restart is.
        await until(lambda: set(balancer_states(stack)) == {"down"})
        await until(lambda: monitor_states(stack)["server"] == "down")
        seen_down = monitor_states(stack)
        login = await asyncio.to_thread(
            httpx.post,
            f"{stack.url('api_gateway')}/login",
            json={"username": "admin", "password": "admin123"},
        )
        # A restart takes a few seconds; so does this outage, at the least.
        await asyncio.sleep(max(0.0, down_at + OUTAGE - time.monotonic()))
        await asyncio.to_thread(private_postgres.start)
        back = time.monotonic()
        await until(lambda: len([o for o in traffic.since(back) if o.ok]) >= 30)
    recovery = traffic.recovery(back)
    say(traffic.summary(f"postgres-restart (down {back - down_at:.1f}s)", recovery))
    say(f"FAULT postgres-restart: monitor during the outage: {seen_down}")

    outage = [o for o in traffic.outcomes if down_at <= o.sent < back]
    assert any(o.envelope_503 for o in outage), "the load met the outage"
    # No 500, no dropped connection, no 502/504: only the documented "try again shortly".
    assert traffic.unexpected() == []
    assert recovery is not None
    assert recovery <= RECOVERY_BOUND
    assert seen_down["server"] == seen_down["server2"] == "down"
    assert seen_down["api_gateway"] == "down"  # its /saude checks the users' database
    assert (login.status_code, login.json()["status"]) == (503, "error")
    await until(lambda: monitor_states(stack)["server"] == "up")

    stored = await asyncio.to_thread(stored_ids, stack, traffic.tag)
    lost = {i: n for i, n in traffic.acknowledged.items() if stored.get(i) != n}
    assert lost == {}, f"{len(lost)} acknowledged writes missing"
