"""The balancer app: /status, /saude, Prometheus series per backend and the access line."""

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from balancer_fakes import ScriptedBackend, refused_url
from load_balancer.config import BalancerSettings
from load_balancer.main import build_app


@pytest.fixture
async def backends() -> AsyncIterator[list[ScriptedBackend]]:
    """Two answering backends."""
    started = [await ScriptedBackend(name).start() for name in ("one", "two")]
    yield started
    for backend in started:
        await backend.close()


async def _app(urls: list[str], **values: Any) -> Any:
    settings = BalancerSettings(servidores=urls, _env_file=None, health_interval=0.1, **values)  # type: ignore[arg-type]
    return build_app(settings)


async def _settle(http: httpx.AsyncClient, states: list[str]) -> dict[str, Any]:
    for _ in range(250):
        status = (await http.get("/status")).json()["data"]
        if [b["state"] for b in status["backends"]] == states:
            return dict(status)
        await asyncio.sleep(0.02)
    raise AssertionError(f"backends never reached {states}: {status}")


async def test_status_reports_every_backends_state_and_counters(
    backends: list[ScriptedBackend],
) -> None:
    dead = refused_url()
    app = await _app([backends[0].url, backends[1].url, dead])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lb") as http:
            await _settle(http, ["up", "up", "down"])
            for _ in range(4):
                assert (await http.get("/itens")).status_code == 200
            status = await _settle(http, ["up", "up", "down"])
    assert status["strategy"] == "round_robin"
    one, two, down = status["backends"]
    assert (one["url"], one["requests"], two["requests"], down["requests"]) == (
        backends[0].url,
        2,
        2,
        0,
    )
    assert one["healthy"]
    assert not down["healthy"]
    assert one["in_flight"] == 0
    assert one["failures"] == 0
    assert one["ejections"] == 0
    assert one["latency_ms"]["p50"] > 0
    assert one["latency_ms"]["p95"] >= one["latency_ms"]["p50"]
    assert down["last_check_error"] == "connect: ConnectionRefusedError"


async def test_saude_shows_each_backend_and_says_degraded_while_one_is_down(
    backends: list[ScriptedBackend],
) -> None:
    app = await _app([backends[0].url, refused_url()])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lb") as http:
            await _settle(http, ["up", "down"])
            saude = await http.get("/saude")
    assert saude.status_code == 200  # the balancer itself is alive
    report = saude.json()["data"]
    assert report["status"] == "degraded"
    detail = report["checks"]["backends"]
    assert detail["status"] == "degraded"
    assert [b["state"] for b in detail["backends"]] == ["up", "down"]


async def test_all_backends_down_is_an_immediate_503(backends: list[ScriptedBackend]) -> None:
    app = await _app([refused_url(), refused_url()])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lb") as http:
            await _settle(http, ["down", "down"])
            response = await http.post("/itens", json={})
            saude = (await http.get("/saude")).json()["data"]
    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert saude["checks"]["backends"]["status"] == "down"


async def test_metrics_are_labelled_by_backend(backends: list[ScriptedBackend]) -> None:
    app = await _app([backends[0].url])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lb") as http:
            await _settle(http, ["up"])
            await http.get("/itens")
            text = (await http.get("/metrics")).text
    label = f'backend="{backends[0].url}"'
    for series in (
        "balancer_backend_up",
        "balancer_backend_in_flight",
        "balancer_backend_requests_total",
        "balancer_backend_latency_seconds_count",
        "balancer_backend_ejections_total",
    ):
        assert f"{series}{{{label}}}" in text, series
    assert f"balancer_backend_up{{{label}}} 1.0" in text


async def test_each_forwarded_request_logs_one_line_with_its_backend(
    backends: list[ScriptedBackend], caplog: pytest.LogCaptureFixture
) -> None:
    app = await _app([backends[0].url])
    logging.getLogger().addHandler(caplog.handler)  # build_app reconfigured the root logger
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lb") as http:
            await http.get("/itens", headers={"X-Request-ID": "req-42"})
    lines = [r for r in caplog.records if r.name == "access" and "/itens" in r.getMessage()]
    assert len(lines) == 1
    line = lines[0]
    assert line.getMessage().startswith("GET /itens 200 ")
    assert line.getMessage().endswith("ms")
    assert line.backend == backends[0].url  # type: ignore[attr-defined]
    assert line.request_id == "req-42"  # type: ignore[attr-defined]
