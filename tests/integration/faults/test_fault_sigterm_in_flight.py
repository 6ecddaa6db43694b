"""SIGTERM with requests in flight: uvicorn stops accepting, finishes them, then exits.

A request is held in flight the way a slow client holds one: its body arrives in two parts,
and the second is sent only after the signal (uvicorn waits up to 10 s for such requests,
`timeout_graceful_shutdown` in svc_common.app.serve).
"""

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.integration.conftest import login
from tests.integration.faults.conftest import steady_load, until
from tests.integration.stack import Stack

IN_FLIGHT = 3
# (service, path, body): a write each service accepts, answered 201.
WRITES = {
    "server": "/itens",
    "load_balancer": "/itens",
    "api_gateway": "/itens",
    "cache": "/cache",
}


def write_body(service: str, tag: str) -> bytes:
    """A valid body for the service's write, named so it can be found afterwards."""
    if service == "cache":
        return json.dumps({"key": f"sigterm:{tag}", "value": tag}).encode()
    return json.dumps({"nome": tag, "descricao": "sent slowly", "preco": 2.5}).encode()


async def slow_write(
    url: str, body: bytes, token: str, half_sent: asyncio.Event, release: asyncio.Event
) -> httpx.Response:
    """POST whose body stops halfway until `release` is set."""

    async def parts() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        half_sent.set()
        await release.wait()
        yield body[len(body) // 2 :]

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=60) as http:
        return await http.post(url, content=parts(), headers=headers)


def refuses_connections(url: str) -> bool:
    """Whether nothing listens at the service's address any more."""
    try:
        httpx.get(f"{url}/saude", timeout=2)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        return False
    return False


@pytest.mark.parametrize("service", list(WRITES))
async def test_sigterm_lets_requests_in_flight_finish_and_stops_taking_new_ones(
    healthy: Stack, service: str, say: Callable[[str], None]
) -> None:
    stack = healthy
    token = await asyncio.to_thread(login, stack, "admin", "admin123")
    url = stack.url(service)
    tags = [f"sigterm-{service}-{uuid.uuid4().hex[:6]}" for _ in range(IN_FLIGHT)]
    halves = [asyncio.Event() for _ in tags]
    release = asyncio.Event()
    writes = [
        asyncio.create_task(
            slow_write(url + WRITES[service], write_body(service, tag), token, half, release)
        )
        for tag, half in zip(tags, halves, strict=True)
    ]
    for half in halves:
        await half.wait()
    await asyncio.sleep(1.0)  # the halves reach the service: the requests are in flight
    proc = stack.procs[service]
    log_start = stack.log_path(service).stat().st_size
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    await until(lambda: refuses_connections(url), seconds=10)
    assert proc.poll() is None, "still running: the requests in flight hold it"
    release.set()
    answers = await asyncio.gather(*writes)
    finished = time.monotonic() - signalled
    exit_code = await asyncio.to_thread(proc.wait, 30)
    say(
        f"FAULT sigterm {service}: in flight={IN_FLIGHT} "
        f"answered={[r.status_code for r in answers]} exit={exit_code} "
        f"answered {finished:.2f}s after the signal"
    )

    assert [r.status_code for r in answers] == [201] * IN_FLIGHT
    # uvicorn raises the signal again once it has shut down: the parent sees a SIGTERM exit.
    assert exit_code == -signal.SIGTERM
    # Looked for in what the service logged since the signal, however long its lines are.
    with stack.log_path(service).open("rb") as log:
        log.seek(log_start)
        shutdown_log = log.read().decode(errors="replace")
    assert "Application shutdown complete" in shutdown_log, shutdown_log[-4000:]
    await asyncio.to_thread(stack.restart, service)
    # What they wrote is there.
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        for tag, answer in zip(tags, answers, strict=True):
            if service == "cache":
                read = await http.get(f"{stack.url('cache')}/cache/sigterm:{tag}")
                assert read.json()["data"]["value"] == tag
            else:
                item_id = answer.json()["data"]["id"]
                read = await http.get(f"{stack.url('api_gateway')}/itens/{item_id}")
                assert read.json()["data"]["nome"] == tag


async def test_a_server_draining_after_sigterm_sends_new_requests_to_the_other(
    healthy: Stack, say: Callable[[str], None]
) -> None:
    stack = healthy
    token = await asyncio.to_thread(login, stack, "admin", "admin123")
    url = stack.url("server2")
    half, release = asyncio.Event(), asyncio.Event()
    async with steady_load(stack) as traffic:
        await until(lambda: len(traffic.acknowledged) >= 10)
        body = write_body("server2", f"sigterm-server2-{uuid.uuid4().hex[:6]}")
        write = asyncio.create_task(slow_write(url + "/itens", body, token, half, release))
        await half.wait()
        await asyncio.sleep(1.0)
        stack.procs["server2"].send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await until(lambda: refuses_connections(url), seconds=10)
        # New requests keep being answered (by server) while server2 still holds this one.
        await until(lambda: len(traffic.since(signalled)) >= 30)
        release.set()
        answer = await write
        await asyncio.to_thread(stack.procs["server2"].wait, 30)
    say(traffic.summary("sigterm server2 under load"))

    assert answer.status_code == 201
    assert [o for o in traffic.outcomes if not o.ok] == []
