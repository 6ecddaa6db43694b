"""A server that hangs (SIGSTOP: connections accepted, nothing answered), through the stack.

load_balancer/tests/test_balancer_proxy.py pins the per-try and overall deadlines against
scripted backends; here a real server process freezes under load behind the real balancer.
"""

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.conftest import login
from tests.integration.faults.conftest import (
    FAULT_ENV,
    monitor_states,
    steady_load,
    stored_ids,
    until,
)
from tests.integration.stack import Stack

TRY_TIMEOUT = float(FAULT_ENV["TRY_TIMEOUT"])


def backends(stack: Stack) -> dict[str, dict[str, object]]:
    """The balancer's /status per backend URL."""
    status = httpx.get(f"{stack.url('load_balancer')}/status", timeout=5).json()["data"]
    return {b["url"]: b for b in status["backends"]}


@pytest.fixture
def freezer(healthy: Stack) -> Iterator[Callable[[str], None]]:
    """freeze(service) sends SIGSTOP; every frozen service gets SIGCONT afterwards."""
    frozen: list[str] = []

    def freeze(service: str) -> None:
        healthy.procs[service].send_signal(signal.SIGSTOP)
        frozen.append(service)

    yield freeze
    for service in frozen:
        healthy.procs[service].send_signal(signal.SIGCONT)
    healthy.wait_balanced()


async def test_a_hung_server_costs_a_try_timeout_while_server2_answers_every_request(
    healthy: Stack, freezer: Callable[[str], None], say: Callable[[str], None]
) -> None:
    stack = healthy
    hung = stack.url("server")
    async with steady_load(stack) as traffic:
        await until(lambda: len(traffic.acknowledged) >= 10)
        failures_before = int(str(backends(stack)[hung]["failures"]))
        freezer("server")
        hung_at = time.monotonic()
        await until(lambda: backends(stack)[hung]["state"] in {"down", "ejected"})
        taken_out = time.monotonic() - hung_at
        # The monitor's probe of /saude times out too (PROBE_TIMEOUT, 2 s by default).
        await until(lambda: monitor_states(stack)["server"] == "down")
        monitor = await asyncio.to_thread(monitor_states, stack)
        seen_by_monitor = time.monotonic() - hung_at
        await until(lambda: len(traffic.since(time.monotonic() - 1)) >= 20)
        stack.procs["server"].send_signal(signal.SIGCONT)
        await until(lambda: backends(stack)[hung]["state"] == "up")
        await until(lambda: len(traffic.since(time.monotonic() - 1)) >= 20)
    during = [o for o in traffic.outcomes if o.sent >= hung_at]
    slowest = max(o.done - o.sent for o in during)
    say(traffic.summary("hung-server"))
    say(
        f"FAULT hung-server: out of rotation after {taken_out:.1f}s, "
        f"down on the monitor after {seen_by_monitor:.1f}s, "
        f"slowest answer {slowest:.2f}s (TRY_TIMEOUT {TRY_TIMEOUT}s); monitor {monitor}"
    )

    # Requests caught by the hung server were answered by server2 once a try timed out.
    assert [o for o in traffic.outcomes if not o.ok] == []
    assert int(str(backends(stack)[hung]["failures"])) > failures_before
    assert monitor["server2"] == "up"
    # A POST resent elsewhere carried the balancer's Idempotency-Key: stored once, not twice.
    stored = await asyncio.to_thread(stored_ids, stack, traffic.tag)
    assert {i: n for i, n in traffic.acknowledged.items() if stored.get(i) != n} == {}
    assert [n for n, count in Counter(stored.values()).items() if count > 1] == []


def test_with_every_server_hung_the_balancers_deadline_answers_504_then_503(
    healthy: Stack, freezer: Callable[[str], None], say: Callable[[str], None]
) -> None:
    stack = healthy
    headers = {"Authorization": f"Bearer {login(stack, 'admin', 'admin123')}"}
    with httpx.Client(base_url=stack.url("api_gateway"), headers=headers, timeout=60) as http:
        freezer("server")
        freezer("server2")

        def send(method: str) -> tuple[str, httpx.Response, float]:
            started = time.monotonic()
            response = http.request(method, "/itens", json={"nome": "hung", "preco": 1})
            return method, response, time.monotonic() - started

        # Both at once, before the health checks take the frozen servers out.
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(send, ("GET", "POST")))
        deadline = time.monotonic() + 60
        while {b["state"] for b in backends(stack).values()} - {"down", "ejected"}:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        out = http.get("/itens")
        answers.append(("GET, both out", out, time.monotonic() - started))
    say(
        "FAULT every-server-hung: "
        + ", ".join(f"{m} {r.status_code} in {s:.2f}s" for m, r, s in answers)
    )
    # One try on each server, each ended by TRY_TIMEOUT; then the 504 in the envelope.
    for _, response, _ in answers[:2]:
        assert response.status_code == 504
        assert response.json()["message"] == "Upstream server timed out"
    # Once both are out of rotation, the answer is immediate.
    assert out.status_code == 503
    assert out.json()["message"] == "No backend server available"
