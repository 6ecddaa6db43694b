"""Settings, the health state machine, passive ejection, backend choice and the latency window."""

import time

import pytest
from load_balancer.backends import Backend, BackendPool, Health
from load_balancer.config import BalancerSettings
from load_balancer.stats import LatencyWindow
from prometheus_client import REGISTRY
from pydantic import ValidationError
from svc_common.discovery import Address


def _settings(**values: object) -> BalancerSettings:
    return BalancerSettings(_env_file=None, **values)  # type: ignore[arg-type]


def _pool(names: list[str], **values: object) -> BackendPool:
    pool = BackendPool(_settings(servidores=[f"http://{n}" for n in names], **values))
    for name in names:
        pool.replace(name, [Address(f"http://{name}", name=name)])
    return pool


def test_servidores_is_the_seeds_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVIDORES", "http://localhost:8002/, http://localhost:8003")
    settings = BalancerSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.servidores == ["http://localhost:8002", "http://localhost:8003"]


def test_a_backend_without_a_scheme_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVIDORES", "localhost:8002")
    with pytest.raises(ValidationError):
        BalancerSettings(_env_file=None)  # type: ignore[call-arg]


def test_defaults_follow_the_health_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTH_INTERVAL", "0.5")
    monkeypatch.setenv("BALANCE_STRATEGY", "least_conn")
    settings = BalancerSettings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.health_rise, settings.health_fall) == (2, 3)
    assert settings.fast_interval == 0.25
    assert settings.base_ejection == 0.5
    assert settings.balance_strategy == "least_conn"


def test_an_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValidationError):
        _settings(balance_strategy="random")


def test_the_first_probe_decides_at_once_then_rise_and_fall_apply() -> None:
    settings = _settings(health_rise=2, health_fall=3)
    backend = Backend("http://a", origin="a", name="a")
    assert backend.state == "unknown"
    backend.record_probe(False, settings, error="refused")
    assert backend.state == "down"
    backend.record_probe(True, settings, error=None)
    assert backend.state == "up"  # never up before: no flapping to guard against
    for expected in ("up", "up", "down"):
        backend.record_probe(False, settings, error="refused")
        assert backend.state == expected
    backend.record_probe(True, settings, error=None)
    assert backend.state == "down"
    backend.record_probe(True, settings, error=None)
    assert backend.state == "up"


def test_a_failed_probe_between_passes_restarts_the_rise_count() -> None:
    settings = _settings(health_rise=2, health_fall=1)
    backend = Backend("http://a", origin="a", name="a")
    backend.record_probe(True, settings, error=None)
    backend.record_probe(False, settings, error="HTTP 503")
    for ok in (True, False, True):
        backend.record_probe(ok, settings, error=None)
    assert backend.health is Health.DOWN


def test_down_and_wavering_backends_are_probed_at_the_fast_interval() -> None:
    settings = _settings(health_interval=2.0, health_fall=3)
    backend = Backend("http://a", origin="a", name="a")
    backend.record_probe(True, settings, error=None)
    assert backend.probe_interval(settings) == 2.0
    backend.record_probe(False, settings, error="timeout")
    assert backend.probe_interval(settings) == 1.0


def test_failures_in_a_row_eject_a_backend_and_traffic_moves_away() -> None:
    pool = _pool(["a", "b"], eject_after=3)
    a = pool.backends[0]
    for _ in range(3):
        pool.failed(a, "connect", "refused")
    assert a.state == "ejected"
    assert a.ejections == 1
    assert {pool.pick([]).name for _ in range(4)} == {"b"}  # type: ignore[union-attr]


def test_a_success_resets_the_failure_count() -> None:
    pool = _pool(["a", "b"], eject_after=2)
    a = pool.backends[0]
    pool.failed(a, "http_5xx", "HTTP 500")
    a.record_success(0.01)
    pool.failed(a, "http_5xx", "HTTP 500")
    assert a.state != "ejected"


def test_an_ejected_backend_returns_after_its_time_and_a_passing_probe() -> None:
    pool = _pool(["a", "b"], eject_after=1, health_interval=0.05)
    a = pool.backends[0]
    pool.failed(a, "connect", "refused")
    time.sleep(0.06)
    assert not a.takes_traffic(time.monotonic())  # time served, but no probe since
    a.record_probe(True, pool.settings, error=None)
    assert a.takes_traffic(time.monotonic())
    assert a.state == "up"


def test_repeated_ejections_back_off_exponentially_up_to_the_cap() -> None:
    pool = _pool(["a", "b"], eject_after=1, eject_time=1.0, eject_max_time=3.0)
    a = pool.backends[0]
    periods = []
    for _ in range(4):
        pool.failed(a, "timeout", "SocketTimeoutError")
        assert a.ejected_at is not None
        periods.append(round(a.ejected_until - a.ejected_at, 3))
        # Let it back in at once, as if its time had passed and a probe had passed.
        a.ejected_until = a.last_ok = time.monotonic()
        assert a.takes_traffic(time.monotonic() + 1)
    assert periods == [1.0, 2.0, 3.0, 3.0]


def test_a_backend_that_rises_after_being_down_is_no_longer_ejected() -> None:
    pool = _pool(["a", "b"], eject_after=1, eject_time=60.0, health_fall=1)
    a = pool.backends[0]
    a.record_probe(True, pool.settings, error=None)
    pool.failed(a, "connect", "refused")
    a.record_probe(False, pool.settings, error="refused")
    a.record_probe(True, pool.settings, error=None)
    a.record_probe(True, pool.settings, error=None)
    assert a.state == "up"
    assert a.takes_traffic(time.monotonic())


def test_down_backends_get_no_traffic_and_none_left_means_no_pick() -> None:
    pool = _pool(["a", "b"])
    a, b = pool.backends
    a.record_probe(False, pool.settings, error="refused")
    assert {pool.pick([]) for _ in range(3)} == {b}
    b.record_probe(False, pool.settings, error="refused")
    assert pool.pick([]) is None


def test_round_robin_shares_evenly_among_healthy_backends() -> None:
    pool = _pool(["a", "b", "c"])
    pool.backends[0].record_probe(False, pool.settings, error="refused")
    picks = [pool.pick([]).name for _ in range(6)]  # type: ignore[union-attr]
    assert sorted(picks) == ["b", "b", "b", "c", "c", "c"]


def test_a_retry_goes_to_the_backend_after_the_one_that_failed() -> None:
    pool = _pool(["a", "b", "c"])
    a, b, c = pool.backends
    assert pool.pick([b]) is c
    assert pool.pick([c]) is a
    assert pool.pick([a, b, c]) is None


def test_least_conn_picks_the_backend_with_fewest_open_requests() -> None:
    pool = _pool(["a", "b", "c"], balance_strategy="least_conn")
    a, b, c = pool.backends
    a.in_flight, b.in_flight, c.in_flight = 5, 1, 3
    assert {pool.pick([]) for _ in range(5)} == {b}
    assert pool.pick([b]) is c


def test_least_conn_rotates_among_equally_loaded_backends() -> None:
    pool = _pool(["a", "b"], balance_strategy="least_conn")
    assert {pool.pick([]).name for _ in range(4)} == {"a", "b"}  # type: ignore[union-attr]


def test_replacing_an_origins_addresses_keeps_the_survivors() -> None:
    pool = BackendPool(_settings(servidores=["http://svc"]))
    pool.replace("svc", [Address(f"http://10.0.0.{i}", name=str(i)) for i in (1, 2)])
    survivor = pool.backends[0]
    survivor.requests = 7
    removed = pool.replace("svc", [Address(f"http://10.0.0.{i}", name=str(i)) for i in (1, 3)])
    assert [b.url for b in removed] == ["http://10.0.0.2"]
    assert [b.url for b in pool.backends] == ["http://10.0.0.1", "http://10.0.0.3"]
    assert pool.backends[0] is survivor


def test_the_up_gauge_follows_the_pools_backend_across_re_resolution() -> None:
    pool = BackendPool(_settings(servidores=["http://svc"]))
    address = Address("http://10.0.0.9", name="gauge-test")
    pool.replace("svc", [address])
    pool.replace("svc", [address])  # resolved again: same address, same backend
    pool.backends[0].record_probe(False, pool.settings, error="refused")
    assert REGISTRY.get_sample_value("balancer_backend_up", {"backend": "gauge-test"}) == 0.0


def test_latency_window_gives_nearest_rank_percentiles_in_ms() -> None:
    window = LatencyWindow(size=100)
    assert window.percentiles(0.5) == [None]
    for ms in range(1, 101):
        window.record(ms / 1000)
    assert window.percentiles(0.5, 0.95) == [51.0, 95.0]


def test_latency_window_forgets_the_oldest_samples() -> None:
    window = LatencyWindow(size=4)
    for seconds in (9.0, 9.0, 9.0, 9.0, 0.001, 0.001, 0.001, 0.001):
        window.record(seconds)
    assert window.percentiles(0.95) == [1.0]
