"""Series counted without locks, read as prometheus_client's would be; who may read /metrics."""

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from pydantic import ValidationError
from svc_common.app import create_app
from svc_common.metrics import LoopCounter, LoopHistogram, observe
from svc_common.settings import ServiceSettings


def test_a_loop_counter_counts_per_label_set_and_forgets_a_removed_one() -> None:
    registry = CollectorRegistry()
    tries = LoopCounter("tries", "Tries.", ["backend"], registry=registry)
    for backend in ("a", "a", "b"):
        tries.labels(backend).inc()
    assert registry.get_sample_value("tries_total", {"backend": "a"}) == 2
    assert registry.get_sample_value("tries_total", {"backend": "b"}) == 1
    tries.remove("b")
    assert registry.get_sample_value("tries_total", {"backend": "b"}) is None


def test_histogram_buckets_are_cumulative_and_a_bound_counts_in_its_own_bucket() -> None:
    registry = CollectorRegistry()
    latency = LoopHistogram("latency", "Latency.", ["route"], (0.01, 0.1), registry=registry)
    for seconds in (0.005, 0.01, 0.05, 3.0):
        latency.labels("/itens").observe(seconds)
    labels = {"route": "/itens"}
    bucket = "latency_bucket"
    assert registry.get_sample_value(bucket, {**labels, "le": "0.01"}) == 2, "le is inclusive"
    assert registry.get_sample_value(bucket, {**labels, "le": "0.1"}) == 3
    assert registry.get_sample_value(bucket, {**labels, "le": "+Inf"}) == 4
    assert registry.get_sample_value("latency_count", labels) == 4
    assert registry.get_sample_value("latency_sum", labels) == 3.065


def test_requests_are_exposed_as_a_counter_and_a_histogram_by_route_and_status() -> None:
    labels = {"method": "GET", "route": "/test_common_metrics/{x}"}
    for status in (200, 200, 404):
        observe("GET", labels["route"], status, 0.002)
    assert REGISTRY.get_sample_value("http_requests_total", {**labels, "status": "200"}) == 2
    assert REGISTRY.get_sample_value("http_requests_total", {**labels, "status": "404"}) == 1
    assert REGISTRY.get_sample_value("http_request_duration_seconds_count", labels) == 3
    text = generate_latest().decode()
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text


def _client(**settings: object) -> TestClient:
    values = {"service_name": "t", "porta": 1, "_env_file": None} | settings
    app = create_app(ServiceSettings(**values), title="t", description="t")  # type: ignore[arg-type]
    return TestClient(app)


def test_metrics_are_open_without_a_metrics_token() -> None:
    assert _client().get("/metrics").status_code == 200


def test_a_metrics_token_is_asked_for_and_checked() -> None:
    client = _client(metrics_token="scrape-token-0123456789")
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": "Basic x"},
    ):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["status"] == "error"
    allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert allowed.status_code == 200
    assert "http_requests_total" in allowed.text


def test_a_short_metrics_token_is_refused() -> None:
    with pytest.raises(ValidationError, match="METRICS_TOKEN"):
        ServiceSettings(service_name="t", porta=1, metrics_token="short")  # type: ignore[call-arg]
