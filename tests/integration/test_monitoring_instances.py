"""A monitor whose target name resolves to several addresses, through the real resolver.

Two cache processes listen on 127.0.0.1 and 127.0.0.2 (Linux routes all of 127/8 to lo) on
the same port, and one name, `cache-pods.test`, resolves to both: the monitor runs in a mount
namespace of its own (`unshare -m`) where /etc/hosts is a file of this test, so glibc's
getaddrinfo answers both addresses as it answers a headless Service's on Kubernetes. Rewriting
that file is a DNS change. What this does not show: the cluster's DNS itself (CoreDNS, record
TTLs, `publishNotReadyAddresses`) and IPv6.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.browser import headless_chromium
from tests.integration.conftest import OUTPUT, missing
from tests.integration.stack import SCRUBBED, STARTUP_TIMEOUT, free_port, stop_process

NAME = "cache-pods.test"
WORKDIR = OUTPUT / "monitoring-instances"


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(0.1)
    return found


def hosts(*ips: str) -> str:
    """An /etc/hosts in which NAME stands for these addresses."""
    return "127.0.0.1 localhost\n" + "".join(f"{ip} {NAME}\n" for ip in ips)


def in_own_hosts(hosts_file: Path, argv: list[str]) -> list[str]:
    """argv run in a mount namespace where /etc/hosts is hosts_file (edits show through)."""
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(hosts_file), *argv]


def _require_mount_namespace(tmp: Path) -> None:
    probe = tmp / "hosts-probe"
    probe.write_text(hosts("127.0.0.1", "127.0.0.2"))
    try:
        found = subprocess.run(
            in_own_hosts(probe, ["getent", "ahostsv4", NAME]),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        missing("unshare (util-linux)")
    if found.returncode != 0 or "127.0.0.2" not in found.stdout:
        missing(f"a mount namespace of the test's own (unshare -m): {found.stderr.strip()}")


class Pods:
    """Cache processes on one port, one per loopback address, as pods of one Deployment."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUBBED} | {
            "PORTA": str(self.port),
            "SECRET_KEY": os.urandom(32).hex(),
            "DEV_MODE": "false",
            "LOG_FORMAT": "json",
        }

    def url(self, ip: str) -> str:
        """Base URL of the pod at `ip`."""
        return f"http://{ip}:{self.port}"

    def instance(self, ip: str) -> str:
        """The monitor's `instance` label for the pod at `ip`."""
        return f"{ip}:{self.port}"

    def start(self, ip: str) -> None:
        """Start the pod at `ip` and wait until it answers."""
        with (self.workdir / f"cache-{ip}.log").open("ab") as log:
            self.procs[ip] = subprocess.Popen(
                [sys.executable, "-m", "cache"],
                env=self.env | {"HOST": ip},
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self._ready(ip), STARTUP_TIMEOUT, f"cache on {ip}")

    def _ready(self, ip: str) -> bool:
        if self.procs[ip].poll() is not None:
            tail = (self.workdir / f"cache-{ip}.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"cache on {ip} exited:\n{tail}")
        return _answers(f"{self.url(ip)}/saude")

    def kill(self, ip: str) -> None:
        """SIGKILL the pod at `ip`."""
        self.procs[ip].send_signal(signal.SIGKILL)
        self.procs[ip].wait(timeout=30)

    def stop_all(self) -> None:
        """Stop every pod still running."""
        for proc in self.procs.values():
            stop_process(proc)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _data(url: str) -> Any:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response.json()["data"] if response.status_code == 200 else None


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pods, Path, str]]:
    """Pods on 127.0.0.1 and 127.0.0.2, and a monitor of `cache=http://cache-pods.test:PORT`."""
    tmp = tmp_path_factory.mktemp("instances")
    _require_mount_namespace(tmp)
    WORKDIR.mkdir(parents=True, exist_ok=True)
    pods = Pods(WORKDIR)
    hosts_file = tmp / "hosts"
    hosts_file.write_text(hosts("127.0.0.1", "127.0.0.2"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED} | {
        "PORTA": str(port),
        "HOST": "127.0.0.1",
        "DEV_MODE": "false",
        "MONITOR_TARGETS": f"cache=http://{NAME}:{pods.port}",
        "POLL_INTERVAL": "0.3",
        "RESOLVE_INTERVAL": "0.5",
        "RATE_WINDOW": "5",
        "ALERT_DOWN_FOR": "0",
    }
    monitor: subprocess.Popen[bytes] | None = None
    try:
        pods.start("127.0.0.1")
        pods.start("127.0.0.2")
        with (WORKDIR / "monitoring.log").open("ab") as log:
            monitor = subprocess.Popen(
                in_own_hosts(hosts_file, [sys.executable, "-m", "monitoring"]),
                env=env,
                cwd=WORKDIR,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        started = monitor

        def monitor_ready() -> bool:
            if started.poll() is not None:
                tail = (WORKDIR / "monitoring.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"the monitor exited:\n{tail}")
            return _answers(f"{url}/saude")

        wait_for(monitor_ready, STARTUP_TIMEOUT, "monitor started")
        yield pods, hosts_file, url
    finally:
        if monitor is not None:
            stop_process(monitor)
        pods.stop_all()


def cache_health(monitor: str) -> dict[str, Any] | None:
    """The cache service as the monitor's /health shows it."""
    health = _data(f"{monitor}/health")
    return next((s for s in health["services"] if s["name"] == "cache"), None) if health else None


def states(monitor: str) -> dict[str, str]:
    """instance -> status of the cache's instances."""
    service = cache_health(monitor)
    return {i["instance"]: i["status"] for i in service["instances"]} if service else {}


def until(check: Callable[[], Any], what: str) -> Any:
    """wait_for with this module's patience."""
    return wait_for(check, 20, what)


def test_a_name_with_two_addresses_is_two_instances_each_with_its_own_health_and_traffic(
    setup: tuple[Pods, Path, str],
) -> None:
    pods, _, monitor = setup
    both = {pods.instance("127.0.0.1"): "up", pods.instance("127.0.0.2"): "up"}
    until(lambda: states(monitor) == both, "two instances up")
    service = cache_health(monitor)
    assert service is not None
    assert (service["status"], service["url"]) == ("up", f"http://{NAME}:{pods.port}")

    # Traffic to one pod only: the service's rate is that pod's, the other's stays at zero.
    with httpx.Client(base_url=pods.url("127.0.0.2"), timeout=5) as pod:
        assert {pod.get(f"/cache/k{i}").status_code for i in range(30)} == {401}

    def split() -> dict[str, float] | None:
        [cache] = _data(f"{monitor}/stats")["services"]
        rates = {i["instance"]: i["request_rate"] or 0.0 for i in cache["instances"]}
        return rates if rates[pods.instance("127.0.0.2")] > 0 else None

    rates = until(split, "traffic seen on 127.0.0.2")
    assert rates[pods.instance("127.0.0.1")] == 0

    text = httpx.get(f"{monitor}/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    up = {s.labels["instance"]: s.value for s in families["up"].samples}
    assert up == dict.fromkeys(both, 1.0)


def test_a_dead_pod_degrades_the_service_and_dns_changes_add_and_remove_instances(
    setup: tuple[Pods, Path, str],
) -> None:
    pods, hosts_file, monitor = setup
    dead, alive = pods.instance("127.0.0.2"), pods.instance("127.0.0.1")
    pods.kill("127.0.0.2")
    until(lambda: states(monitor) == {alive: "up", dead: "down"}, "one instance down")
    service = cache_health(monitor)
    assert service is not None
    assert service["status"] == "degraded"
    health = httpx.get(f"{monitor}/health", timeout=5).json()
    assert health["message"] == "degraded: cache (1 of 2 up)"

    def down_alert() -> dict[str, Any] | None:
        alerts = _data(f"{monitor}/alerts?state=firing") or []
        return next((a for a in alerts if a["name"] == "ServiceDown"), None)

    alert = until(down_alert, "ServiceDown firing")
    assert alert["labels"]["instance"] == dead
    assert "1 of 2 up" in alert["summary"]

    # The pod is gone from DNS (as from a headless Service): its instance and alert go too.
    hosts_file.write_text(hosts("127.0.0.1"))
    until(lambda: states(monitor) == {alive: "up"}, "the dead instance removed")
    service = cache_health(monitor)
    assert service is not None
    assert service["status"] == "up"
    until(lambda: down_alert() is None, "ServiceDown resolved")
    assert dead not in httpx.get(f"{monitor}/metrics", timeout=5).text

    # A new pod appears in DNS: a new instance, up once it answers.
    pods.start("127.0.0.3")
    hosts_file.write_text(hosts("127.0.0.1", "127.0.0.3"))
    new = pods.instance("127.0.0.3")
    until(lambda: states(monitor) == {alive: "up", new: "up"}, "the new instance up")


def test_the_dashboard_tile_lists_the_instances_of_a_service_with_several(
    setup: tuple[Pods, Path, str],
) -> None:
    pods, _, monitor = setup
    problems: list[str] = []
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.goto(f"{monitor}/dashboard")
        tile = 'article.tile[data-service="cache"]'
        page.wait_for_selector(f"{tile} ul.instances li.up >> nth=1", timeout=15_000)
        rows = page.eval_on_selector_all(
            f"{tile} ul.instances li", "els => els.map(e => e.dataset.instance)"
        )
        assert sorted(rows) == sorted(pods.instance(ip) for ip in ("127.0.0.1", "127.0.0.3"))
        assert page.inner_text(f"{tile} .state").lower() == "up 2/2"
        page.screenshot(path=str(WORKDIR / "dashboard-instances.png"), full_page=True)
    assert problems == []
