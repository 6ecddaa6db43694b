"""Active health checks and the resolution of SERVIDORES names into backends."""

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from balancer_fakes import ScriptedBackend, refused_url
from load_balancer.backends import Address, Backend, BackendPool
from load_balancer.config import BalancerSettings
from load_balancer.health import HealthChecker, resolve


def _settings(urls: list[str], **values: object) -> BalancerSettings:
    return BalancerSettings(servidores=urls, _env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
async def checker() -> AsyncIterator[Any]:
    """Start a HealthChecker over the given URLs; closed afterwards."""
    running: list[HealthChecker] = []

    async def make(urls: list[str], **values: object) -> HealthChecker:
        settings = _settings(urls, **values)
        running.append(HealthChecker(settings, BackendPool(settings)))
        await running[-1].start()
        return running[-1]

    yield make
    for item in running:
        await item.close()
        for backend in item.pool.backends:
            backend.close_connections()


async def _until(predicate: Any) -> None:
    for _ in range(250):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition never became true")


async def test_an_ip_address_is_one_backend_under_its_own_url() -> None:
    [backend] = await resolve("http://127.0.0.1:8002")
    assert (backend.url, backend.name, backend.host_header) == (
        "http://127.0.0.1:8002",
        "http://127.0.0.1:8002",
        None,
    )


async def test_localhost_is_one_backend_not_one_per_address_family() -> None:
    [backend] = await resolve("http://localhost:8002")
    assert backend.url == "http://127.0.0.1:8002"
    assert backend.host_header == "localhost:8002"
    assert backend.name == "http://localhost:8002 (127.0.0.1)"


async def test_a_name_with_several_addresses_stands_for_all_of_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def headless(host: str, port: int, **_: Any) -> list[Any]:
        assert (host, port) == ("items.default.svc", 8002)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in ("10.1.0.7", "10.1.0.5", "10.1.0.7")
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", headless)
    backends = await resolve("http://items.default.svc:8002")
    assert [b.url for b in backends] == ["http://10.1.0.5:8002", "http://10.1.0.7:8002"]
    assert {b.host_header for b in backends} == {"items.default.svc:8002"}


async def test_probes_mark_answering_backends_up_and_failing_ones_down(checker: Any) -> None:
    ok, sick = await ScriptedBackend("ok").start(), await ScriptedBackend("sick", "sick").start()
    try:
        running = await checker([ok.url, sick.url, refused_url()], health_interval=0.1)
        pool = running.pool
        await _until(lambda: [b.state for b in pool.backends] == ["up", "down", "down"])
        assert pool.backends[1].last_check_error == "HTTP 503"
        assert pool.backends[2].last_check_error == "connect: ConnectionRefusedError"
        sick.mode = "ok"
        await _until(lambda: pool.backends[1].state == "up")
    finally:
        await ok.close()
        await sick.close()


async def test_a_probe_timeout_while_live_requests_succeed_does_not_count(
    checker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    answering = True

    async def slow_probe(self: HealthChecker, backend: Backend) -> tuple[bool, str | None]:
        await asyncio.sleep(0.01)
        if answering:
            backend.record_success(0.001)  # a real request got through meanwhile
        return False, "timeout"

    monkeypatch.setattr(HealthChecker, "probe", slow_probe)
    running = await checker(["http://127.0.0.1:9"], health_interval=0.05, health_fall=2)
    [backend] = running.pool.backends
    backend.record_probe(True, running.settings, error=None)
    await asyncio.sleep(0.3)
    assert backend.state == "up"
    answering = False
    await _until(lambda: backend.state == "down")


async def test_re_resolution_adds_and_removes_backends_and_survives_dns_failure(
    checker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: list[list[str] | None] = [["10.0.0.1", "10.0.0.2"]]

    async def fake_resolve(origin: str) -> list[Address]:
        ips = answers[-1]
        if ips is None:
            raise OSError("Name or service not known")
        return [Address(f"http://{ip}:8002", name=ip) for ip in ips]

    monkeypatch.setattr("load_balancer.health.resolve", fake_resolve)
    running = await checker(["http://items:8002"], resolve_interval=3600)
    assert [b.name for b in running.pool.backends] == ["10.0.0.1", "10.0.0.2"]
    answers.append(["10.0.0.2", "10.0.0.3"])
    await running.resolve_all()
    assert [b.name for b in running.pool.backends] == ["10.0.0.2", "10.0.0.3"]
    assert len(running._watchers) == 2
    answers.append(None)
    await running.resolve_all()
    assert [b.name for b in running.pool.backends] == ["10.0.0.2", "10.0.0.3"]
    assert running.unresolved == {"http://items:8002": "Name or service not known"}
