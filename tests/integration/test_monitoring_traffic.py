"""What the stack's monitor derives from real traffic, and what it exports."""

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.stack import SERVICES, Stack

pytestmark = pytest.mark.parametrize("stack", ["embedded"], indirect=True)

T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float = 15) -> T:
    """The first truthy result of `check`, polled until `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while (found := check()) is None or not found:
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)
    return found


def test_stats_derive_rate_latency_split_and_hit_ratio_from_traffic(
    stack: Stack, admin_token: str
) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=stack.url("api_gateway"), headers=auth, timeout=10) as gateway:
        for _ in range(30):
            assert gateway.get("/itens").status_code == 200
    with httpx.Client(base_url=stack.url("cache"), headers=auth, timeout=10) as cache:
        assert cache.post("/cache", json={"key": "traffic", "value": 1}).status_code == 201
        hits = [cache.get("/cache/traffic").status_code for _ in range(40)]
        misses = [cache.get(f"/cache/absent-{i}").status_code for i in range(5)]
    assert set(hits) == {200}
    assert set(misses) == {404}
    monitor = stack.url("monitoring")

    def settled() -> dict[str, Any] | None:
        stats: dict[str, Any] = httpx.get(f"{monitor}/stats").json()["data"]
        split = [b for b in stats["balancer"]["backends"] if b["share"]]
        ready = stats["cache"]["hit_ratio"] is not None and len(split) == 2
        return stats if ready else None

    stats = eventually(settled)
    gateway_traffic = next(s for s in stats["services"] if s["name"] == "api_gateway")
    assert gateway_traffic["request_rate"] > 0
    assert 0 <= gateway_traffic["error_ratio"] < 1  # earlier tests may have left 503s in the window
    assert 0 < gateway_traffic["p50_ms"] <= gateway_traffic["p95_ms"] <= gateway_traffic["p99_ms"]
    balancer = stats["balancer"]
    assert balancer["source"] in {"metrics", "status"}
    shares = {b["name"]: b["share"] for b in balancer["backends"]}
    assert set(shares) == {"server", "server2"}
    assert all(share > 0.25 for share in shares.values())
    assert sum(shares.values()) == pytest.approx(1, abs=0.01)
    assert stats["cache"]["hit_ratio"] >= 0.6  # 40 hits to 5 misses, plus whatever came before

    history = httpx.get(f"{monitor}/stats/history").json()["data"]
    assert len(history["t"]) > 1
    assert set(history["services"]) == set(SERVICES)
    assert any(rate for rate in history["services"]["api_gateway"]["request_rate"])


def test_health_reports_state_probe_latency_and_uptime_for_every_service(stack: Stack) -> None:
    body = httpx.get(f"{stack.url('monitoring')}/health").json()
    assert body["status"] == "success"
    for service in body["data"]["services"]:
        assert service["status"] == "up", service
        assert service["latency_ms"] > 0
        assert 0 < service["uptime_percent"] <= 100


def test_monitor_metrics_are_prometheus_text_with_up_and_probe_latency(stack: Stack) -> None:
    text = httpx.get(f"{stack.url('monitoring')}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    up = {s.labels["service"]: s.value for s in families["up"].samples}
    assert up == dict.fromkeys(SERVICES, 1.0)
    latency = {s.labels["service"] for s in families["probe_latency_seconds"].samples}
    assert latency == set(SERVICES)
    assert "monitor_scrape_duration_seconds" in families
    assert "monitor_poll_cycle_seconds" in families


@pytest.mark.parametrize(
    "path", ["/stats/history?since=yesterday", "/alerts?state=bogus", "/alerts/history?limit=0"]
)
def test_bad_query_parameters_are_422_in_the_envelope(stack: Stack, path: str) -> None:
    response = httpx.get(f"{stack.url('monitoring')}{path}")
    assert response.status_code == 422
    assert response.json()["status"] == "error"
