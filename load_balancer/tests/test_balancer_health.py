"""Active health checks and the resolution of SERVIDORES names into backends."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from balancer_fakes import ScriptedBackend, refused_url
from load_balancer.backends import Backend, BackendPool
from load_balancer.config import BalancerSettings
from load_balancer.health import HealthChecker
from svc_common.discovery import Address


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

    async def no_probe(self: HealthChecker, backend: Backend) -> tuple[bool, str | None]:
        return True, None

    # Probes of made-up addresses are beside the point here (and would go out on the network).
    monkeypatch.setattr(HealthChecker, "probe", no_probe)
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
