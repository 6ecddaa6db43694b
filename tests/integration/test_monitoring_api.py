"""The stack's monitor: /health, its own /metrics, and 422s for bad parameters."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.stack import SERVICES, Stack

pytestmark = pytest.mark.parametrize("stack", ["embedded"], indirect=True)


def test_health_reports_state_probe_latency_and_uptime_for_every_service(stack: Stack) -> None:
    body = httpx.get(f"{stack.url('monitoring')}/health").json()
    assert body["status"] == "success"
    for service in body["data"]["services"]:
        assert service["status"] == "up", service
        assert service["latency_ms"] > 0
        assert 0 < service["uptime_percent"] <= 100


def test_monitor_metrics_are_prometheus_text_with_up_and_probe_latency(stack: Stack) -> None:
    text = stack.scrape("monitoring").text
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
