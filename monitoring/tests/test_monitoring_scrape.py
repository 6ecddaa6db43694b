"""Reading Prometheus text into totals, and totals into rates and quantiles."""

import math

import pytest
from monitoring.scrape import Scrape, Window, delta, histogram_quantile, parse_metrics
from monitoring.targets import TargetState, backends_from_status

BODY = """\
# HELP http_requests_total HTTP requests handled.
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/itens",status="200"} 90.0
http_requests_total{method="POST",route="/itens",status="503"} 10.0
http_requests_total{method="GET",route="/saude",status="200"} 5000.0
http_requests_total{method="GET",route="/metrics",status="200"} 5000.0
http_requests_total{method="GET",route="/cache/{key}",status="200"} 30.0
http_requests_total{method="GET",route="/cache/{key}",status="404"} 10.0
http_requests_created{method="GET",route="/itens",status="200"} 1.7e9
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.01",method="GET",route="/itens"} 50.0
http_request_duration_seconds_bucket{le="0.1",method="GET",route="/itens"} 90.0
http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/itens"} 100.0
http_request_duration_seconds_bucket{le="0.01",method="GET",route="/saude"} 5000.0
http_request_duration_seconds_bucket{le="0.1",method="GET",route="/saude"} 5000.0
http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/saude"} 5000.0
http_request_duration_seconds_count{method="GET",route="/itens"} 100.0
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
"""


def test_probe_routes_do_not_count_as_traffic() -> None:
    scrape = parse_metrics(BODY)
    assert scrape.requests == 140  # 90 + 10 + 30 + 10, without /saude and /metrics
    assert scrape.errors == 10
    assert scrape.buckets == {0.01: 50, 0.1: 90, math.inf: 100}


def test_cache_ratio_falls_back_to_get_cache_key_answers() -> None:
    scrape = parse_metrics(BODY)
    assert (scrape.cache_hits, scrape.cache_misses, scrape.cache_source) == (30, 10, "http")


def test_cache_hit_and_miss_counters_win_over_http_answers() -> None:
    body = BODY + (
        'cache_hits_total{namespace="items"} 70\ncache_hits_total{namespace="x"} 5\n'
        'cache_misses_total{namespace="items"} 25\n'
    )
    scrape = parse_metrics(body)
    assert (scrape.cache_hits, scrape.cache_misses, scrape.cache_source) == (75, 25, "metrics")


def test_cache_lookups_with_a_result_label_are_read_too() -> None:
    body = 'cache_lookups_total{result="hit"} 8\ncache_lookups_total{result="miss"} 2\n'
    scrape = parse_metrics(body)
    assert (scrape.cache_hits, scrape.cache_misses) == (8, 2)


@pytest.mark.parametrize(
    "body",
    [
        'lb_backend_up{backend="http://a"} 1\nlb_backend_up{backend="http://b"} 0\n',
        'lb_backend_healthy{backend="http://a"} 1\nlb_backend_healthy{backend="http://b"} 0',
        'lb_backend_ejected{backend="http://a"} 0\nlb_backend_ejected{backend="http://b"} 1',
        'lb_backend_state{backend="http://a",state="up"} 1\n'
        'lb_backend_state{backend="http://b",state="up"} 0\n'
        'lb_backend_state{backend="http://b",state="down"} 1\n',
    ],
)
def test_backend_state_is_read_from_any_common_metric_shape(body: str) -> None:
    """a is in rotation and b is not, however the balancer spells it."""
    states = parse_metrics(body).backend_state
    assert states["http://a"] == "up"
    assert states["http://b"] in {"down", "ejected"}


def test_backend_requests_sum_over_status_and_ignore_other_backend_series() -> None:
    body = (
        'lb_backend_requests_total{backend="http://a",status="200"} 7\n'
        'lb_backend_requests_total{backend="http://a",status="502"} 1\n'
        'lb_backend_requests_total{backend="http://b",status="200"} 4\n'
        'lb_backend_failures_total{backend="http://a"} 99\n'
        'lb_backend_request_duration_seconds_bucket{backend="http://a",le="+Inf"} 8\n'
    )
    assert parse_metrics(body).backend_requests == {"http://a": 8, "http://b": 4}


def test_balancer_status_json_gives_requests_and_state() -> None:
    body = {
        "data": [
            {"url": "http://a", "requests": 5, "state": "Up", "healthy": True},
            {"url": "http://b", "requests": 3, "healthy": False},
            {"url": "http://c", "requests": 1},
        ]
    }
    assert backends_from_status(body) == (
        {"http://a": 5, "http://b": 3, "http://c": 1},
        {"http://a": "up", "http://b": "down"},
    )
    nested = {"data": {"backends": [{"backend": "http://a", "requests": 2, "state": "ejected"}]}}
    assert backends_from_status(nested) == ({"http://a": 2}, {"http://a": "ejected"})
    assert backends_from_status({"data": None}) == ({}, {})


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.5, 0.01), (0.25, 0.005), (0.7, 0.055), (0.9, 0.1), (0.95, 0.1), (0.0, 0.0)],
)
def test_quantiles_interpolate_within_buckets_like_prometheus(q: float, expected: float) -> None:
    buckets = {0.01: 50.0, 0.1: 90.0, math.inf: 100.0}
    assert histogram_quantile(q, buckets) == pytest.approx(expected)


def test_quantile_is_none_without_observations_or_an_inf_bucket() -> None:
    assert histogram_quantile(0.5, {0.1: 0.0, math.inf: 0.0}) is None
    assert histogram_quantile(0.5, {0.1: 5.0}) is None


def test_a_counter_that_went_down_counts_as_a_restart() -> None:
    before = Scrape(requests=100, errors=5, buckets={math.inf: 100})
    after = Scrape(requests=7, errors=1, buckets={math.inf: 7})
    change = delta(before, after, at=10, seconds=1)
    assert (change.requests, change.errors, change.buckets) == (7, 1, {math.inf: 7})


def test_window_rates_cover_only_the_last_seconds() -> None:
    window = Window(seconds=10)
    empty = Scrape()
    for at, requests in ((1, 50), (6, 10), (11, 10), (16, 10)):
        window.add(delta(empty, Scrape(requests=requests), at=at, seconds=5))
    # At t=16 the deltas at 6 and before have left the 10 s window.
    assert window.rate("requests") == pytest.approx(20 / 10)


def test_target_traffic_reports_rate_error_ratio_and_quantiles() -> None:
    state = TargetState("server", "http://s", rate_window=60)
    state.record_scrape(Scrape(), 0)
    assert state.traffic()["request_rate"] is None  # one scrape gives no rate yet
    state.record_scrape(parse_metrics(BODY), 10)
    traffic = state.traffic()
    assert traffic["request_rate"] == pytest.approx(14.0)  # 140 requests in 10 s
    assert traffic["error_ratio"] == pytest.approx(10 / 140, abs=1e-4)
    assert traffic["p50_ms"] == pytest.approx(10.0)
    assert traffic["p99_ms"] == pytest.approx(100.0)


def test_a_failed_scrape_forgets_the_traffic_and_starts_over() -> None:
    state = TargetState("server", "http://s", rate_window=60)
    state.record_scrape(Scrape(), 0)
    state.record_scrape(parse_metrics(BODY), 10)
    state.scrape_failed("ConnectError")
    assert state.traffic()["request_rate"] is None
    assert state.scrape_error == "ConnectError"
    state.record_scrape(parse_metrics(BODY), 20)  # back: a baseline, no rate until the next one
    assert state.traffic()["request_rate"] is None
    assert state.scrape_error is None
