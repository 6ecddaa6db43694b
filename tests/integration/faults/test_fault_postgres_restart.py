"""PostgreSQL restarted several times under load: envelope 503s while it is down, full recovery
after each restart, no other answer and no lost write."""

import asyncio
import json
import time
from collections.abc import Callable

import httpx

from tests.integration.faults.conftest import monitor_states, steady_load, stored_ids, until
from tests.integration.faults.dependencies import PrivatePostgres
from tests.integration.faults.traffic import Traffic
from tests.integration.stack import Stack

# The bound: every request succeeds again within this long after PostgreSQL returns.
RECOVERY_BOUND = 5.0
OUTAGE = 3.0
RESTARTS = 3
# Twice the other fault tests' load: more requests in flight each time PostgreSQL cuts its
# sessions, so more chances to meet one between its last statement and its session's close.
WORKERS = 8
# What answers requests during the outage and so could log a traceback there.
DATABASE_USERS = ("server", "server2", "api_gateway")


def balancer_states(stack: Stack) -> list[str]:
    """The balancer's view of its backends."""
    status = httpx.get(f"{stack.url('load_balancer')}/status", timeout=5).json()
    return [b["state"] for b in status["data"]["backends"]]


def log_sizes(stack: Stack) -> dict[str, int]:
    """Where each service's log ends now, to read only what a test adds."""
    return {s: stack.log_path(s).stat().st_size for s in DATABASE_USERS}


def errors_logged_since(stack: Stack, sizes: dict[str, int]) -> list[str]:
    """The ERROR (or worse) lines, tracebacks included, the services logged after `sizes`."""
    found = []
    for service, offset in sizes.items():
        with stack.log_path(service).open("rb") as log:
            log.seek(offset)
            for line in log.read().decode(errors="replace").splitlines():
                try:
                    level = json.loads(line).get("level")
                except ValueError:
                    level = "ERROR"  # anything but a JSON line is a traceback's or a crash's
                if level in {"ERROR", "CRITICAL"}:
                    found.append(f"{service}: {line[:300]}")
    return found


async def restart_postgres(
    private_postgres: PrivatePostgres, traffic: Traffic
) -> tuple[float, float]:
    """Stop PostgreSQL (fast shutdown) for OUTAGE seconds under the load; (down_at, back)."""
    down_at = time.monotonic()
    await asyncio.to_thread(private_postgres.stop)
    await asyncio.sleep(OUTAGE)
    await asyncio.to_thread(private_postgres.start)
    back = time.monotonic()
    await until(lambda: len([o for o in traffic.since(back) if o.ok]) >= 30)
    return down_at, back


async def test_postgres_restarts_under_load_answer_only_2xx_or_envelope_503_and_keep_every_write(
    healthy: Stack, private_postgres: PrivatePostgres, say: Callable[[str], None]
) -> None:
    stack = healthy
    sizes = log_sizes(stack)
    outages: list[tuple[float, float]] = []
    async with steady_load(stack, WORKERS) as traffic:
        await until(lambda: len(traffic.acknowledged) >= 10)
        # The first restart is watched: down long enough for the balancer and the monitor to
        # see it, as a real restart is.
        down_at = time.monotonic()
        await asyncio.to_thread(private_postgres.stop)
        await until(lambda: set(balancer_states(stack)) == {"down"})
        await until(lambda: monitor_states(stack)["server"] == "down")
        seen_down = monitor_states(stack)
        login = await asyncio.to_thread(
            httpx.post,
            f"{stack.url('api_gateway')}/login",
            json={"username": "admin", "password": "admin123"},
        )
        await asyncio.sleep(max(0.0, down_at + OUTAGE - time.monotonic()))
        await asyncio.to_thread(private_postgres.start)
        back = time.monotonic()
        outages.append((down_at, back))
        await until(lambda: len([o for o in traffic.since(back) if o.ok]) >= 30)
        # The others are plain restarts, each once writes have gone on since the last.
        for _ in range(RESTARTS - 1):
            written = len(traffic.acknowledged)
            await until(lambda written=written: len(traffic.acknowledged) >= written + 10)
            outages.append(await restart_postgres(private_postgres, traffic))
    ends = [down for down, _ in outages[1:]] + [None]
    recoveries = [traffic.recovery(back, end) for (_, back), end in zip(outages, ends, strict=True)]
    shown = " ".join(f"{r:.2f}s" if r is not None else "never" for r in recoveries)
    say(traffic.summary(f"postgres-restart x{RESTARTS} (down {OUTAGE:.0f}s, recovery {shown})"))
    say(f"FAULT postgres-restart: monitor during the first outage: {seen_down}")

    for down_at, back in outages:
        met = [o for o in traffic.outcomes if down_at <= o.sent < back]
        assert any(o.envelope_503 for o in met), "the load met every outage"
    # No 500, no dropped connection, no 502/504: only the documented "try again shortly".
    assert traffic.unexpected() == []
    assert {o.retry_after for o in traffic.outcomes if o.status == 503} == {"1"}
    assert all(r is not None and r <= RECOVERY_BOUND for r in recoveries), recoveries
    assert seen_down["server"] == seen_down["server2"] == "down"
    assert seen_down["api_gateway"] == "down"  # its /saude checks the users' database
    assert (login.status_code, login.json()["status"]) == (503, "error")
    assert errors_logged_since(stack, sizes) == []
    await until(lambda: monitor_states(stack)["server"] == "up")

    stored = await asyncio.to_thread(stored_ids, stack, traffic.tag)
    lost = {i: n for i, n in traffic.acknowledged.items() if stored.get(i) != n}
    assert lost == {}, f"{len(lost)} acknowledged writes missing"
