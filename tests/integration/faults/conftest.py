"""One stack for the fault tests, on a PostgreSQL and a Redis of its own that they may kill."""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest

from tests.integration.conftest import OUTPUT, login, missing, require_installed
from tests.integration.faults.dependencies import PrivatePostgres, postgres_bindir
from tests.integration.faults.traffic import SUMMARY, Traffic
from tests.integration.gateways import PrivateRedis, running_redis_server
from tests.integration.stack import Stack

WORKDIR = OUTPUT / "stack-faults"
WORKERS = 4
# Short deadlines keep a hung backend's cost to the tests small; the defaults are 5 s and 2 s.
# TRY_TIMEOUT leaves a slow but live server room on a loaded 2-core machine; a hung one
# still costs only one try.
FAULT_ENV = {"TRY_TIMEOUT": "2", "HEALTH_TIMEOUT": "1"}


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A cluster of our own on a free port; the shared one at 5432 is never touched."""
    bindir = postgres_bindir()
    if bindir is None:
        missing("PostgreSQL (initdb, postgres)")
    WORKDIR.mkdir(parents=True, exist_ok=True)
    server = PrivatePostgres(bindir, WORKDIR / "postgres.log")
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def fault_redis() -> Iterator[PrivateRedis]:
    """A redis-server of our own on a free port."""
    require_installed("redis-server")
    with running_redis_server(WORKDIR) as server:
        yield server


async def _create_database(url: str, name: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def fault_stack(private_postgres: PrivatePostgres, fault_redis: PrivateRedis) -> Iterator[Stack]:
    """All six services on the private PostgreSQL and Redis."""
    asyncio.run(_create_database(private_postgres.url(), "arquitetura"))
    SUMMARY.unlink(missing_ok=True)
    for old in WORKDIR.glob("*.log"):
        if old.name != "postgres.log":
            old.unlink()
    stack = Stack(
        "faults", WORKDIR, private_postgres.url("arquitetura"), fault_redis.url, FAULT_ENV
    )
    try:
        stack.start_all()
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture
def healthy(
    fault_stack: Stack, private_postgres: PrivatePostgres, fault_redis: PrivateRedis
) -> Stack:
    """The fault stack with everything running again (an earlier test may have left a fault)."""
    if private_postgres.proc is None or private_postgres.proc.poll() is not None:
        private_postgres.start()
    if fault_redis.proc is None or fault_redis.proc.poll() is not None:
        fault_redis.start()
    for service in fault_stack.procs:
        if not fault_stack.running(service):
            fault_stack.restart(service)
    fault_stack.wait_balanced()
    return fault_stack


@pytest.fixture
def say(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    """Print a line to the terminal past pytest's capture (the figures a report quotes)."""

    def write(line: str) -> None:
        with capsys.disabled():
            print(f"\n{line}")

    return write


@asynccontextmanager
async def steady_load(stack: Stack, workers: int = WORKERS) -> AsyncIterator[Traffic]:
    """`workers` clients sending requests through the gateway as admin until the block ends."""
    headers = {"Authorization": f"Bearer {login(stack, 'admin', 'admin123')}"}
    traffic, stop = Traffic(), asyncio.Event()
    async with httpx.AsyncClient(
        base_url=stack.url("api_gateway"),
        headers=headers,
        timeout=30,
        limits=httpx.Limits(max_connections=workers),
    ) as http:
        tasks = [asyncio.create_task(traffic.worker(http, stop)) for _ in range(workers)]
        try:
            yield traffic
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def until(predicate: Callable[[], bool], seconds: float = 60.0) -> None:
    """Wait (polling in a thread) until predicate() holds; fail after `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await asyncio.to_thread(predicate):
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.05)


def monitor_states(stack: Stack) -> dict[str, str]:
    """What the monitor's /health says of each service."""
    body = httpx.get(f"{stack.url('monitoring')}/health", timeout=5).json()
    return {s["name"]: s["status"] for s in body["data"]["services"]}


def stored_ids(stack: Stack, tag: str) -> dict[int, str]:
    """id -> nome of every stored item whose name contains `tag`, read through the gateway."""
    headers = {"Authorization": f"Bearer {login(stack, 'admin', 'admin123')}"}
    found: dict[int, str] = {}
    with httpx.Client(base_url=stack.url("api_gateway"), headers=headers, timeout=30) as http:
        while True:
            page = http.get("/itens", params={"q": tag, "limit": 500, "offset": len(found)})
            assert page.status_code == 200, page.text
            found |= {i["id"]: i["nome"] for i in page.json()["data"]}
            if not page.json()["data"] or len(found) >= page.json()["meta"]["total"]:
                return found
