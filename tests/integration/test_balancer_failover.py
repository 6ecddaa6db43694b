"""Failover through the whole path: a server SIGKILLed under load, restarted, and all down.

These tests stop and start servers, so they run on a stack of their own (server, server2,
balancer, gateway) rather than the shared one the other integration tests read from.
"""

import asyncio
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.integration.conftest import OUTPUT, login
from tests.integration.stack import Stack

HEALTH_INTERVAL = 0.5
WORKERS = 6
# Starting a server again takes seconds on an idle machine, far longer on a busy one.
RESTART_TIMEOUT = 180.0


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def failover_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Two servers behind the balancer and the gateway, probed every HEALTH_INTERVAL."""
    workdir = OUTPUT / f"stack-failover-{request.param}"
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*.log"):
        old.unlink()
    if request.param == "embedded":
        database = f"sqlite:///{tmp_path_factory.mktemp('failover')}/app.db"
    else:
        database = request.getfixturevalue("postgres_database")
    running = Stack(
        f"failover-{request.param}",
        workdir,
        database,
        None,
        extra_env={"HEALTH_INTERVAL": str(HEALTH_INTERVAL)},
    )
    try:
        running.start_all(["server", "server2", "load_balancer", "api_gateway"])
        yield running
    finally:
        running.stop_all()


@dataclass
class Load:
    """What concurrent clients saw: every outcome, and the items they were told were stored."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (kind, when the request was sent, what went wrong)
    failures: list[tuple[str, float, str]] = field(default_factory=list)
    acknowledged: dict[int, str] = field(default_factory=dict)
    done: int = 0

    async def worker(self, http: httpx.AsyncClient, number: int, stop: asyncio.Event) -> None:
        """GET, keyed POST, plain POST, in turn, until told to stop."""
        turn = 0
        while not stop.is_set():
            turn += 1
            kind = ("get", "keyed-post", "plain-post")[turn % 3]
            nome = f"{self.tag}-{kind}-{number}-{turn}"
            headers = {"Idempotency-Key": nome} if kind == "keyed-post" else {}
            sent = time.monotonic()
            try:
                if kind == "get":
                    response = await http.get("/itens", params={"limit": 5})
                else:
                    item = {"nome": nome, "descricao": "failover", "preco": 1.0}
                    response = await http.post("/itens", json=item, headers=headers)
            except httpx.HTTPError as exc:
                self.failures.append((kind, sent, repr(exc)))
                continue
            finally:
                self.done += 1
            self.outcomes[(kind, str(response.status_code))] += 1
            if response.status_code not in {200, 201}:
                self.failures.append((kind, sent, f"{response.status_code} {response.text}"))
            elif kind != "get":
                self.acknowledged[response.json()["data"]["id"]] = nome


def _states(stack: Stack) -> dict[str, str]:
    status = httpx.get(f"{stack.url('load_balancer')}/status", timeout=5).json()["data"]
    return {b["url"]: b["state"] for b in status["backends"]}


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(1200):
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


def _revive(stack: Stack) -> None:
    """Start the servers an earlier test left dead, and wait until both take traffic."""
    dead = [s for s in ("server", "server2") if stack.procs[s].poll() is not None]
    for service in dead:
        stack.start(service)
    for service in dead:
        stack.wait_healthy(service, timeout=RESTART_TIMEOUT)
    stack.wait_balanced()


def _stored_names(http: httpx.Client, tag: str) -> Counter[str]:
    names: Counter[str] = Counter()
    offset = 0
    while True:
        page = http.get("/itens", params={"limit": 500, "offset": offset}).json()
        names.update(i["nome"] for i in page["data"] if i["nome"].startswith(tag))
        offset += len(page["data"])
        if not page["data"] or offset >= page["meta"]["total"]:
            return names


async def test_sigkill_under_load_fails_nothing_and_stores_every_acknowledged_post_once(
    failover_stack: Stack,
) -> None:
    stack = failover_stack
    _revive(stack)
    headers = {"Authorization": f"Bearer {login(stack, 'admin', 'admin123')}"}
    load, stop = Load(), asyncio.Event()
    server_url = stack.url("server")
    limits = httpx.Limits(max_connections=WORKERS)
    async with httpx.AsyncClient(
        base_url=stack.url("api_gateway"), headers=headers, timeout=30, limits=limits
    ) as http:
        workers = [asyncio.create_task(load.worker(http, n, stop)) for n in range(WORKERS)]
        await _until(lambda: load.done >= 30)
        stack.signal("server", signal.SIGKILL)
        before_kill = load.done
        await _until(lambda: _states(stack)[server_url] == "down")
        await _until(lambda: load.done >= before_kill + 30)
        stop.set()
        await asyncio.gather(*workers)

    # GETs are retried elsewhere; so are POSTs, keyed by the client or by the balancer, which
    # the servers store once: nothing fails, and a resent POST is never stored twice.
    assert load.failures == [], load.outcomes

    with httpx.Client(base_url=stack.url("api_gateway"), headers=headers, timeout=30) as http:
        for item_id, nome in load.acknowledged.items():
            read = http.get(f"/itens/{item_id}")
            assert read.status_code == 200, (item_id, read.text)
            assert read.json()["data"]["nome"] == nome
        stored = _stored_names(http, load.tag)
    assert [name for name, count in stored.items() if count > 1] == []
    assert set(stored) == set(load.acknowledged.values())


def test_a_restarted_server_takes_traffic_within_two_health_intervals(
    failover_stack: Stack,
) -> None:
    stack = failover_stack
    if stack.procs["server"].poll() is None:  # run alone: bring it down first
        stack.signal("server", signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _states(stack)[stack.url("server")] != "down":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stack.start("server")
    stack.wait_healthy("server", timeout=RESTART_TIMEOUT)
    healthy_at = time.monotonic()
    headers = {"Authorization": f"Bearer {login(stack, 'admin', 'admin123')}"}
    with httpx.Client(base_url=stack.url("api_gateway"), headers=headers, timeout=10) as http:
        while http.get("/itens").headers.get("x-served-by") != "server":
            # The margin covers this loop and a busy machine, not the balancer.
            assert time.monotonic() - healthy_at < 2 * HEALTH_INTERVAL + 0.5
            time.sleep(0.02)


def test_with_every_server_down_the_answer_is_a_503_envelope_within_a_second(
    failover_stack: Stack,
) -> None:
    stack = failover_stack
    headers = {"Authorization": f"Bearer {login(stack, 'admin', 'admin123')}"}
    stack.signal("server", signal.SIGKILL)
    stack.signal("server2", signal.SIGKILL)
    with httpx.Client(base_url=stack.url("api_gateway"), headers=headers, timeout=10) as http:
        # Right after the kill (connections refused) and once both are marked down.
        answers = []
        for _ in range(2):
            for method in ("GET", "POST"):
                started = time.monotonic()
                response = http.request(method, "/itens", json={"nome": "x", "preco": 1})
                answers.append((response, time.monotonic() - started))
            deadline = time.monotonic() + 30
            while set(_states(stack).values()) != {"down"}:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    for response, seconds in answers:
        assert response.status_code == 503
        assert response.json() == {
            "status": "error",
            "data": None,
            "message": "No backend server available",
        }
        assert seconds < 1.0
