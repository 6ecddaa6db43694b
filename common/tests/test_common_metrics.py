"""The request metrics, counted without locks, read as a Counter and a Histogram would."""

from prometheus_client import CollectorRegistry, generate_latest
from svc_common.metrics import RequestMetrics


def _registry(metrics: RequestMetrics) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(metrics)
    return registry


def test_requests_are_counted_by_method_route_and_status() -> None:
    metrics = RequestMetrics()
    for status in (200, 200, 404):
        metrics.observe("GET", "/itens/{item_id}", status, 0.002)
    registry = _registry(metrics)
    labels = {"method": "GET", "route": "/itens/{item_id}"}
    assert registry.get_sample_value("http_requests_total", {**labels, "status": "200"}) == 2
    assert registry.get_sample_value("http_requests_total", {**labels, "status": "404"}) == 1


def test_latency_buckets_are_cumulative_and_a_bound_counts_in_its_own_bucket() -> None:
    metrics = RequestMetrics(buckets=(0.01, 0.1))
    for seconds in (0.005, 0.01, 0.05, 3.0):
        metrics.observe("POST", "/itens", 201, seconds)
    registry = _registry(metrics)
    labels = {"method": "POST", "route": "/itens"}
    bucket = "http_request_duration_seconds_bucket"
    assert registry.get_sample_value(bucket, {**labels, "le": "0.01"}) == 2, "le is inclusive"
    assert registry.get_sample_value(bucket, {**labels, "le": "0.1"}) == 3
    assert registry.get_sample_value(bucket, {**labels, "le": "+Inf"}) == 4
    assert registry.get_sample_value("http_request_duration_seconds_count", labels) == 4
    assert registry.get_sample_value("http_request_duration_seconds_sum", labels) == 3.065


def test_the_exposition_declares_a_counter_and_a_histogram() -> None:
    metrics = RequestMetrics()
    metrics.observe("GET", "/saude", 200, 0.001)
    text = generate_latest(_registry(metrics)).decode()
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert 'http_requests_total{method="GET",route="/saude",status="200"} 1.0' in text
