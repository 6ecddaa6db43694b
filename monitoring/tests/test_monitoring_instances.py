"""A target whose host name resolves to several addresses: one instance per address, a fake
resolver standing in for DNS."""

from typing import Any

import pytest
from monitoring.alerts import AlertEngine
from monitoring.config import MonitorSettings
from monitoring.poller import UP, Poller, _addressed
from monitoring.routes import health, stats
from monitoring.rules import default_rules
from monitoring.scrape import Delta, Scrape
from prometheus_client import REGISTRY
from svc_common.discovery import Address

PORT = 9102
URL = f"http://items.test:{PORT}"


class FakeDns:
    """Answers what `ips` holds now; None: the lookup fails."""

    def __init__(self, *ips: str) -> None:
        self.ips: tuple[str, ...] | None = ips

    async def __call__(self, origin: str) -> list[Address]:
        if self.ips is None:
            raise OSError("Temporary failure in name resolution")
        if not origin.startswith(URL):
            return [Address(origin, name=origin)]
        return [
            Address(f"http://{ip}:{PORT}", name=ip, host_header=f"items.test:{PORT}")
            for ip in self.ips
        ]


def poller_over(dns: FakeDns, **targets: str) -> Poller:
    """A poller that never polls, over these targets (`server` at URL by default)."""
    settings = MonitorSettings(_env_file=None, monitor_targets=targets or {"server": URL})  # type: ignore[call-arg]
    return Poller(settings, resolver=dns)


async def resolved(poller: Poller) -> Poller:
    """The poller after a lookup of every target, applied as the next poll would."""
    await poller.discovery.refresh()
    poller._sync()
    return poller


def up_series(service: str) -> dict[str, float]:
    """instance -> value of the monitor's `up` gauge for one service."""
    return {
        s.labels["instance"]: s.value
        for metric in REGISTRY.collect()
        if metric.name == "up"
        for s in metric.samples
        if s.labels.get("service") == service
    }


def probe(poller: Poller, service: str, **up: bool) -> None:
    """Record one probe per instance (keyed by its last IP byte: i5=True -> 10.0.0.5)."""
    for t in poller.services[service].instances.values():
        ok = up[f"i{t.instance.split(':')[0].rsplit('.', 1)[1]}"]
        t.record(ok, 1.0, None if ok else "ConnectError", window=60)
        UP.labels(t.name, t.instance).set(1 if ok else 0)
    poller.services[service].update()


async def test_a_name_with_several_addresses_is_one_instance_per_address() -> None:
    poller = await resolved(poller_over(FakeDns("10.0.0.5", "10.0.0.6")))
    instances = poller.services["server"].instances
    assert list(instances) == [f"10.0.0.5:{PORT}", f"10.0.0.6:{PORT}"]
    assert {t.host_header for t in instances.values()} == {f"items.test:{PORT}"}
    assert {t.url for t in instances.values()} == {f"http://10.0.0.{i}:{PORT}" for i in (5, 6)}


async def test_an_ip_target_is_one_instance_and_answers_in_the_shape_it_always_had() -> None:
    url = f"http://127.0.0.1:{PORT}"
    poller = await resolved(poller_over(FakeDns(), server=url))
    [t] = poller.services["server"].instances.values()
    assert (t.instance, t.url, t.host_header) == (f"127.0.0.1:{PORT}", url, None)
    t.record(False, 3.5, "ConnectError", window=60)
    envelope = await health(poller)
    assert envelope.message == "down: server"
    [service] = envelope.model_dump()["data"]["services"]
    assert service | {"since": 0, "checked_at": 0} == {
        "name": "server",
        "url": url,
        "status": "down",
        "latency_ms": 3.5,
        "uptime_percent": 0.0,
        "error": "ConnectError",
        "checked_at": 0,
        "since": 0,
        "instances": [t.snapshot()],
    }


async def test_a_service_is_up_degraded_or_down_by_how_many_instances_answer() -> None:
    poller = await resolved(poller_over(FakeDns("10.0.0.5", "10.0.0.6")))
    service = poller.services["server"]
    assert service.status == "unknown"
    probe(poller, "server", i5=True, i6=True)
    assert service.status == "up"
    probe(poller, "server", i5=True, i6=False)
    assert service.status == "degraded"
    envelope = await health(poller)
    assert envelope.data is not None
    assert envelope.data.status == "degraded"
    assert envelope.message == "degraded: server (1 of 2 up)"
    assert envelope.data.services[0].error == f"10.0.0.6:{PORT}: ConnectError"
    probe(poller, "server", i5=False, i6=False)
    assert service.status == "down"


async def test_an_instance_not_probed_yet_degrades_nothing() -> None:
    dns = FakeDns("10.0.0.5")
    poller = await resolved(poller_over(dns))
    probe(poller, "server", i5=True)
    dns.ips = ("10.0.0.5", "10.0.0.7")
    await resolved(poller)
    assert poller.services["server"].status == "up"


async def test_instances_follow_dns_and_a_failed_lookup_keeps_them() -> None:
    dns = FakeDns("10.0.0.5", "10.0.0.6")
    poller = await resolved(poller_over(dns))
    probe(poller, "server", i5=True, i6=False)
    kept = poller.services["server"].instances[f"10.0.0.5:{PORT}"]
    assert up_series("server") == {f"10.0.0.5:{PORT}": 1.0, f"10.0.0.6:{PORT}": 0.0}

    dns.ips = ("10.0.0.5", "10.0.0.7")
    await resolved(poller)
    instances = poller.services["server"].instances
    assert list(instances) == [f"10.0.0.5:{PORT}", f"10.0.0.7:{PORT}"]
    assert instances[f"10.0.0.5:{PORT}"] is kept  # its history goes on
    assert up_series("server") == {f"10.0.0.5:{PORT}": 1.0}  # the gone pod's series went too

    dns.ips = None
    await resolved(poller)
    assert list(poller.services["server"].instances) == [f"10.0.0.5:{PORT}", f"10.0.0.7:{PORT}"]
    assert poller.discovery.unresolved == {URL: "Temporary failure in name resolution"}


async def test_a_name_that_never_resolved_is_polled_as_configured_and_shows_down() -> None:
    dns = FakeDns()
    dns.ips = None
    poller = await resolved(poller_over(dns))
    [t] = poller.services["server"].instances.values()
    assert (t.instance, t.url) == (f"items.test:{PORT}", URL)


async def test_service_down_fires_per_instance_with_the_instance_label() -> None:
    poller = await resolved(poller_over(FakeDns("10.0.0.5", "10.0.0.6")))
    engine = AlertEngine(default_rules(poller.settings))
    probe(poller, "server", i5=True, i6=False)
    engine.evaluate(poller, now=100)
    engine.evaluate(poller, now=200)
    [alert] = engine.alerts("firing")
    assert alert.labels == {"service": "server", "instance": f"10.0.0.6:{PORT}"}
    assert alert.summary == (
        f"server instance 10.0.0.6:{PORT} is not answering /saude (ConnectError); 1 of 2 up"
    )


def feed(poller: Poller, service: str, **windows: tuple[float, float, dict[float, float]]) -> None:
    """Ten seconds of (requests, errors, buckets) per instance, keyed as in probe()."""
    for t in poller.services[service].instances.values():
        requests, errors, buckets = windows[f"i{t.instance.split(':')[0].rsplit('.', 1)[1]}"]
        t.window.add(Delta(0, 10, requests, errors, buckets, {}, 0, 0))


async def test_service_traffic_sums_its_instances_and_stats_show_each_one() -> None:
    poller = await resolved(poller_over(FakeDns("10.0.0.5", "10.0.0.6")))
    fast = {0.01: 100.0, 1.0: 100.0, float("inf"): 100.0}
    slow = {0.01: 0.0, 1.0: 100.0, float("inf"): 100.0}
    feed(poller, "server", i5=(100, 0, fast), i6=(100, 50, slow))
    traffic = poller.services["server"].traffic()
    assert (traffic["request_rate"], traffic["error_ratio"]) == (20.0, 0.25)
    assert traffic["p50_ms"] == pytest.approx(10.0)  # half the requests took at most 10 ms
    assert traffic["p99_ms"] == pytest.approx(1000 * (0.01 + 0.99 * 0.98))
    poller.traffic = {"server": traffic}
    body = (await stats(poller)).data
    assert body is not None
    [service] = body.services
    assert [(i.instance, i.request_rate, i.error_ratio) for i in service.instances] == [
        (f"10.0.0.5:{PORT}", 10.0, 0.0),
        (f"10.0.0.6:{PORT}", 10.0, 0.5),
    ]


async def test_the_balancer_split_sums_every_balancer_instance_and_keeps_an_ejection() -> None:
    dns = FakeDns("10.0.0.5", "10.0.0.6")
    poller = await resolved(poller_over(dns, load_balancer=URL))
    backend = "http://10.1.0.9:9200"
    views: dict[str, dict[str, Any]] = {"i5": {"state": "up"}, "i6": {"state": "ejected"}}
    for t in poller.services["load_balancer"].instances.values():
        view = views[f"i{t.instance.split(':')[0].rsplit('.', 1)[1]}"]
        t.last_scrape = Scrape(
            backend_requests={backend: 50}, backend_state={backend: view["state"]}
        )
        t.window.add(Delta(0, 10, 0, 0, {}, {backend: 50}, 0, 0))
    [split] = poller.balancer()["backends"]
    assert (split["requests_total"], split["request_rate"], split["state"]) == (
        100,
        10.0,
        "ejected",
    )


def test_an_instance_reached_by_ip_is_asked_for_by_its_service_name() -> None:
    poller = poller_over(FakeDns())
    [t] = poller.services["server"].instances.values()
    assert _addressed(t, {"Authorization": "Bearer x"}) == {
        "headers": {"Authorization": "Bearer x"}
    }
    t.host_header = f"items.test:{PORT}"
    assert _addressed(t)["headers"] == {"Host": f"items.test:{PORT}"}
    t.url = f"https://10.0.0.5:{PORT}"
    assert _addressed(t)["extensions"] == {"sni_hostname": "items.test"}
