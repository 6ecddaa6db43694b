"""A monitor of its own over the running stack (short windows and `for` durations, a webhook
receiver): derived traffic, alert lifecycle and notifications end to end."""

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.stack import STARTUP_TIMEOUT, Stack, free_port, stop_process
from tests.integration.webhooks import Receiver, serving_receiver, wait_for

# The monitor does not care which database the stack runs on: one run is enough.
pytestmark = pytest.mark.parametrize("stack", ["embedded"], indirect=True)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """The webhook receiver, serving from a thread."""
    with serving_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def monitor(stack: Stack, receiver: Receiver) -> Iterator[str]:
    """A second monitor over the stack: fast rules, 8 s rate window, webhook to the receiver."""
    port = free_port()
    env = stack.env("monitoring") | {
        "PORTA": str(port),
        "POLL_INTERVAL": "0.5",
        "RATE_WINDOW": "8",
        "ALERT_DOWN_FOR": "1",
        "ALERT_ERROR_RATIO": "0.2",
        "ALERT_ERROR_FOR": "0",
        "ALERT_CACHE_HIT_RATIO": "0.5",
        "ALERT_CACHE_FOR": "0",
        "ALERT_BACKEND_FOR": "0",
        "ALERT_MIN_RATE": "0.5",
        "ALERT_WEBHOOK_URL": receiver.url,
        "ALERT_WEBHOOK_BACKOFF": "0.2",
    }
    url = f"http://127.0.0.1:{port}"
    with (stack.workdir / "monitoring-alerting.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitoring"],
            env=env,
            cwd=stack.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: _get(f"{url}/saude") is not None, STARTUP_TIMEOUT, "monitor started")
        wait_for(lambda: _all_up(url), 30, "monitor sees all six services up")
        yield url
    finally:
        stop_process(proc)


def _get(url: str) -> Any:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response.json()["data"] if response.status_code == 200 else None


def _all_up(monitor: str) -> bool:
    health = _get(f"{monitor}/health")
    return bool(health) and all(s["status"] == "up" for s in health["services"])


def firing(monitor: str, name: str, service: str) -> dict[str, Any] | None:
    """The firing alert of this name for this service, if there is one."""
    for alert in _get(f"{monitor}/alerts?state=firing") or []:
        if alert["name"] == name and alert["service"] == service:
            return dict(alert)
    return None


def test_rates_split_and_hit_ratio_match_the_traffic_sent(
    stack: Stack, monitor: str, admin_token: str
) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=stack.url("cache"), headers=auth, timeout=10) as cache:
        assert cache.post("/cache", json={"key": "live", "value": 1}).status_code == 201
        assert {cache.get("/cache/live").status_code for _ in range(30)} == {200}
        assert {cache.get(f"/cache/absent-{i}").status_code for i in range(10)} == {404}
    cache_stats = wait_for(
        lambda: (c := _get(f"{monitor}/stats")["cache"])["hit_ratio"] == 0.75 and c,
        15,
        "hit ratio of 30 hits in 40 lookups",
    )
    assert any(source.startswith("cache (") for source in cache_stats["sources"])

    with httpx.Client(base_url=stack.url("api_gateway"), headers=auth, timeout=10) as gateway:
        assert {gateway.get("/itens").status_code for _ in range(20)} == {200}

    def even_split() -> dict[str, Any] | None:
        # One snapshot for both: split and rates come from the same window, which a slow
        # machine may see move on between two separate reads.
        stats: dict[str, Any] = _get(f"{monitor}/stats")
        shares = {b["name"]: b["share"] for b in stats["balancer"]["backends"]}
        gateway = next(s for s in stats["services"] if s["name"] == "api_gateway")
        even = shares == {"server": 0.5, "server2": 0.5}
        return stats if even and (gateway["request_rate"] or 0) > 0 else None

    stats = wait_for(even_split, 15, "20 requests split evenly over server and server2")
    # The monitor scrapes with METRICS_TOKEN; anyone else on the public port gets nothing.
    assert httpx.get(f"{stack.url('api_gateway')}/metrics").status_code == 401
    assert stats["balancer"]["source"] in {"metrics", "status"}
    gateway_traffic = next(s for s in stats["services"] if s["name"] == "api_gateway")
    assert gateway_traffic["error_ratio"] == 0
    assert 0 < gateway_traffic["p50_ms"] <= gateway_traffic["p95_ms"] <= gateway_traffic["p99_ms"]
    history = _get(f"{monitor}/stats/history")
    assert any(history["services"]["api_gateway"]["request_rate"])
    assert 0.75 in history["cache_hit_ratio"]


def test_rules_take_thresholds_and_for_durations_from_the_environment(monitor: str) -> None:
    rules = {r["name"]: r for r in _get(f"{monitor}/alerts/rules")}
    assert set(rules) == {
        "ServiceDown",
        "HighLatencyP95",
        "HighErrorRate",
        "LowCacheHitRatio",
        "BackendEjected",
    }
    assert rules["ServiceDown"]["for_seconds"] == 1
    assert rules["HighLatencyP95"]["for_seconds"] == 60  # the default, nothing set
    assert "0.2" in rules["HighErrorRate"]["expr"]


def test_killed_server_fires_within_10s_notifies_the_webhook_and_resolves_on_restart(
    stack: Stack, monitor: str, receiver: Receiver
) -> None:
    receiver.reset(refuse_next=1)  # the first delivery must survive a 503 from the receiver
    stack.signal("server", signal.SIGKILL)
    killed = time.monotonic()
    try:
        alert = wait_for(lambda: firing(monitor, "ServiceDown", "server"), 10, "firing alert")
        note = wait_for(lambda: receiver.find("firing", "ServiceDown", "server"), 10, "webhook")
        assert time.monotonic() - killed < 10
    finally:
        stack.restart("server")
    assert "server" in alert["summary"]
    # `instance` as on Prometheus's own `up == 0` alert (deploy/prometheus/alerts.yml).
    assert alert["labels"] == {
        "alertname": "ServiceDown",
        "severity": "critical",
        "service": "server",
        "instance": stack.url("server").removeprefix("http://"),
    }
    assert note["alerts"][0]["fingerprint"] == alert["fingerprint"]
    assert receiver.refused == 1
    wait_for(lambda: firing(monitor, "ServiceDown", "server") is None, 10, "alert resolved")
    resolved = wait_for(lambda: receiver.find("resolved", "ServiceDown", "server"), 10, "resolved")
    assert resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    steps = [
        (e["from"], e["to"])
        for e in reversed(_get(f"{monitor}/alerts/history?limit=50"))
        if e["fingerprint"] == alert["fingerprint"]
    ]
    assert steps[-3:] == [("inactive", "pending"), ("pending", "firing"), ("firing", "resolved")]


def test_5xx_answers_fire_the_error_rate_alert(
    stack: Stack, monitor: str, admin_token: str
) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    stack.signal("load_balancer", signal.SIGKILL)
    try:
        with httpx.Client(base_url=stack.url("api_gateway"), headers=auth, timeout=5) as gateway:
            statuses = {gateway.get("/itens").status_code for _ in range(20)}
        assert statuses == {503}
        alert = wait_for(
            lambda: firing(monitor, "HighErrorRate", "api_gateway"), 10, "error-rate alert"
        )
    finally:
        stack.restart("load_balancer")
    assert alert["value"] > 0.2
    assert "5xx" in alert["summary"]


def test_cache_misses_fire_the_low_hit_ratio_alert(
    stack: Stack, monitor: str, admin_token: str
) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=stack.url("cache"), headers=auth, timeout=5) as cache:
        assert {cache.get(f"/cache/absent-{i}").status_code for i in range(20)} == {404}
    alert = wait_for(lambda: firing(monitor, "LowCacheHitRatio", "cache"), 10, "hit-ratio alert")
    assert alert["value"] < 0.5
    sources = _get(f"{monitor}/stats")["cache"]["sources"]
    assert any(source.startswith("cache (") for source in sources)
    # No lookups for a whole rate window: no ratio, nothing to alert on.
    wait_for(lambda: firing(monitor, "LowCacheHitRatio", "cache") is None, 20, "resolved")


def test_an_ejected_backend_fires_an_alert_naming_it(stack: Stack, monitor: str) -> None:
    backends = _get(f"{monitor}/stats")["balancer"]["backends"]
    if all(b["state"] is None for b in backends):
        pytest.skip("the balancer reports no per-backend state (neither metrics nor /status)")
    stack.signal("server2", signal.SIGKILL)
    try:
        alert = wait_for(
            lambda: firing(monitor, "BackendEjected", "load_balancer"), 15, "ejected alert"
        )
    finally:
        stack.restart("server2")
    assert alert["labels"]["backend"] == stack.url("server2")
    assert "server2" in alert["summary"]
