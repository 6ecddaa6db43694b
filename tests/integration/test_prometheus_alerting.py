"""Debian's Prometheus and Alertmanager on the committed configuration over the running stack:
a stopped server fires the committed rules, Alertmanager calls a webhook, the restart resolves."""

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.conftest import require_installed
from tests.integration.stack import Stack, free_port, stop_process
from tests.integration.webhooks import Receiver, serving_receiver, wait_for

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "arquitetura.json"
# Seconds between scrapes and between rule evaluations: the committed `for:` durations (15 s
# ServiceDown, 10 s BackendEjected) then decide how long the test waits, not the intervals.
INTERVAL = "1s"


def for_seconds(alertname: str) -> int:
    """The committed rule's `for:` duration (15s, 1m, ...) in seconds."""
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    (rule,) = (r for g in groups for r in g["rules"] if r.get("alert") == alertname)
    duration = rule["for"]
    return int(duration[:-1]) * {"s": 1, "m": 60}[duration[-1]]


# Alerting does not care which database the stack runs on: the PostgreSQL + Redis one.
ON_POSTGRES_REDIS = pytest.mark.parametrize("stack", ["postgres-redis"], indirect=True)


def render_prometheus(directory: Path, stack: Stack, alertmanager: str) -> Path:
    """The committed deploy/prometheus/ in `directory`, its addresses swapped for the stack's.

    Only the targets (found by their `service` label), the Alertmanager address and the
    intervals change; alerts.yml is copied as it is.
    """
    installed = shutil.copytree(PROMETHEUS_DIR, directory)
    (installed / "metrics-token").write_text(stack.metrics_token)
    config_path = installed / "prometheus.yml"
    config = yaml.safe_load(config_path.read_text())
    config["global"] |= {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL}
    (job,) = config["scrape_configs"]
    for group in job["static_configs"]:
        group["targets"] = [stack.url(group["labels"]["service"]).removeprefix("http://")]
    scraped = {group["labels"]["service"] for group in job["static_configs"]}
    assert scraped == set(stack.ports), "the committed config must scrape every service"
    (managers,) = config["alerting"]["alertmanagers"]
    (targets,) = managers["static_configs"]
    targets["targets"] = [alertmanager]
    config_path.write_text(yaml.safe_dump(config))
    return config_path


def render_alertmanager(directory: Path, webhook: str) -> Path:
    """The committed alertmanager.yml with the test's webhook and waits of a second."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["route"] |= {"group_wait": "1s", "group_interval": "1s"}
    (receiver,) = config["receivers"]
    (hook,) = receiver["webhook_configs"]
    assert hook["send_resolved"] is True, "the committed receiver must hear of resolutions"
    hook["url"] = webhook
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def launch(command: list[str], log: Path, ready: str) -> "subprocess.Popen[bytes]":
    """Start a Debian binary logging to `log`; wait until `ready` answers 200."""
    require_installed(command[0])
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{command[0]} exited:\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(ready, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(answers, 60, f"{command[0]} ready")
    except BaseException:
        stop_process(proc)
        raise
    return proc


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """The webhook Alertmanager calls, serving from a thread."""
    with serving_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def alertmanager(
    stack: Stack, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """prometheus-alertmanager on a free loopback port: its address."""
    directory = tmp_path_factory.mktemp("alertmanager")
    address = f"127.0.0.1:{free_port()}"
    command = [
        "prometheus-alertmanager",
        f"--config.file={render_alertmanager(directory, receiver.url)}",
        f"--storage.path={directory / 'data'}",
        f"--web.listen-address={address}",
        "--cluster.listen-address=",  # one instance: no gossip port on every interface
    ]
    log = stack.workdir / "alertmanager.log"
    proc = launch(command, log, f"http://{address}/-/ready")
    yield address
    stop_process(proc)


@pytest.fixture(scope="module")
def prometheus(
    stack: Stack, alertmanager: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """prometheus over the stack, sending to the Alertmanager: its base URL."""
    directory = tmp_path_factory.mktemp("prometheus")
    address = f"127.0.0.1:{free_port()}"
    command = [
        "prometheus",
        f"--config.file={render_prometheus(directory / 'config', stack, alertmanager)}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address={address}",
    ]
    proc = launch(command, stack.workdir / "prometheus.log", f"http://{address}/-/ready")
    yield f"http://{address}"
    stop_process(proc)


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    """An instant query's samples."""
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def test_committed_alertmanager_config_passes_amtool() -> None:
    require_installed("amtool")
    result = subprocess.run(
        ["amtool", "check-config", str(ALERTMANAGER_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@ON_POSTGRES_REDIS
def test_stopped_server_fires_committed_rules_to_the_webhook_and_resolves_on_restart(
    stack: Stack, prometheus: str, receiver: Receiver
) -> None:
    def scraped() -> bool:
        samples = query(prometheus, 'up{job="arquitetura"} == 1')
        return {sample["metric"]["service"] for sample in samples} == set(stack.ports)

    wait_for(scraped, 30, "Prometheus scrapes all six services with the metrics token")
    # The Grafana dashboard's queries run on the live series (query() asserts each answers).
    dashboard = json.loads(DASHBOARD.read_text())
    answers = {
        panel["title"]: query(prometheus, target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    }
    assert len(answers["Services"]) == len(stack.ports)
    receiver.reset()
    stack.signal("server", signal.SIGTERM)
    stopped = time.monotonic()
    try:
        down = wait_for(
            lambda: receiver.find("firing", "ServiceDown", "server"), 60, "ServiceDown notified"
        )
        fired_after = time.monotonic() - stopped
        ejected = wait_for(
            lambda: receiver.find("firing", "BackendEjected", "load_balancer"),
            30,
            "BackendEjected notified",
        )
    finally:
        stack.restart("server")
    (alert,) = down["alerts"]
    assert alert["labels"] == {
        "alertname": "ServiceDown",
        "job": "arquitetura",
        "instance": stack.url("server").removeprefix("http://"),
        "service": "server",
        "severity": "critical",
    }
    assert alert["annotations"] == {"summary": "server is not answering its scrape"}
    # Not before the committed `for:`: the rule's own duration held it back.
    assert fired_after >= for_seconds("ServiceDown"), fired_after
    assert [a["labels"]["backend"] for a in ejected["alerts"]] == [stack.url("server")]
    # Nothing else: no other service, and no second copy of the alert from the monitor's own
    # re-exported `up` series.
    with receiver.lock:
        notified = {
            (a["labels"]["alertname"], a["labels"]["service"])
            for body in receiver.bodies
            for a in body["alerts"]
        }
    assert notified == {("ServiceDown", "server"), ("BackendEjected", "load_balancer")}

    resolved = wait_for(
        lambda: receiver.find("resolved", "ServiceDown", "server"), 60, "ServiceDown resolved"
    )
    (alert,) = resolved["alerts"]
    assert alert["status"] == "resolved"
    assert alert["endsAt"] != "0001-01-01T00:00:00Z"  # Alertmanager's "not ended"
    wait_for(
        lambda: receiver.find("resolved", "BackendEjected", "load_balancer"),
        60,
        "BackendEjected resolved",
    )
    assert query(prometheus, 'ALERTS{alertstate="firing"}') == []
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    failing = {r["name"]: r["lastError"] for g in rules for r in g["rules"] if r["health"] != "ok"}
    assert failing == {}, "every committed rule evaluates on the live series"
