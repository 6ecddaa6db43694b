"""docker-compose.yml's observability profile: Prometheus on the committed config and rules,
Alertmanager, Grafana with the monitor dashboard's panels, Jaeger for the services' traces."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.compose import (
    COMPOSE_FILE,
    LOOPBACK_ONLY,
    OBSERVABILITY,
    PUBLIC,
    compose_config,
    filled_example,
)
from tests.deploy.tools import REPO, missing

PROFILE = ("observability",)
APPS = set(PUBLIC) | set(LOOPBACK_ONLY)
OTEL = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD_HTML = REPO / "monitoring" / "src" / "monitoring" / "static" / "dashboard.html"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"


def services_with(tmp_path: Path, values: dict[str, str]) -> dict[str, Any]:
    """The services as compose resolves them with the profile on and these .env values."""
    result = compose_config(tmp_path, values, profiles=PROFILE)
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = yaml.safe_load(result.stdout)["services"]
    return services


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The services with the profile on, from the filled-in example."""
    return services_with(tmp_path_factory.mktemp("observed"), filled_example())


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """promtool (Debian package prometheus) with these arguments."""
    tool = shutil.which("promtool")
    if tool is None:
        missing("promtool (Debian package prometheus, make system-deps)")
        raise AssertionError  # unreachable: missing() raises
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)


def mounts(spec: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts as container path -> host path (v1 renders strings, v2 mappings)."""
    found = {}
    for volume in spec.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        if source.startswith("/"):
            found[target] = Path(source)
    return found


def test_plain_up_is_unchanged_the_added_services_need_the_profile() -> None:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    profiled = {name for name, spec in services.items() if "profiles" in spec}
    assert profiled == set(OBSERVABILITY)
    assert all(services[name]["profiles"] == ["observability"] for name in profiled)
    for name, spec in services.items():
        if name not in profiled:
            assert not set(spec.get("depends_on", {})) & profiled, name


def test_the_six_services_pass_the_otel_variables_through_and_default_to_off(
    tmp_path: Path, observed: dict[str, Any]
) -> None:
    asked = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    }
    services = services_with(tmp_path, filled_example() | asked)
    for name in APPS:
        assert {key: services[name]["environment"][key] for key in OTEL} == asked, name
        assert {key: observed[name]["environment"][key] for key in OTEL} == dict.fromkeys(
            OTEL, ""
        ), name
    # The endpoint the docs give is Jaeger's OTLP/HTTP port, on a network the services share.
    assert (
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318"
        in (REPO / "docs" / "monitoring.md").read_text()
    )
    jaeger = services["jaeger"]
    assert jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert all("backend" in services[name]["networks"] for name in APPS | {"jaeger"})


def test_compose_prometheus_loads_the_committed_config_rules_and_metrics_token(
    observed: dict[str, Any], tmp_path: Path
) -> None:
    spec = observed["prometheus"]
    command = " ".join(spec["command"])
    # The container's files, laid out as its bind mounts and its command make them.
    root = tmp_path / "container"
    for target, source in mounts(spec).items():
        (root / target.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / target.lstrip("/"))
    token = re.search(r"> (/\S+/metrics-token)", command)
    assert token is not None, command
    (root / token[1].lstrip("/")).write_text("a-metrics-token")
    assert '"$$METRICS_TOKEN"' in command or '"$METRICS_TOKEN"' in command
    assert (
        spec["environment"]["METRICS_TOKEN"] == observed["server"]["environment"]["METRICS_TOKEN"]
    )
    config_path = re.search(r"--config\.file=(\S+)", command)
    assert config_path is not None, command
    result = promtool("check", "config", str(root / config_path[1].lstrip("/")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout + result.stderr

    # Each target is the compose service its `service` label names, on the port it listens on.
    config = yaml.safe_load(mounts(spec)[config_path[1]].read_text())
    for group in config["scrape_configs"][0]["static_configs"]:
        (target,) = group["targets"]
        host, port = target.split(":")
        assert host == group["labels"]["service"]
        assert observed[host]["environment"]["PORTA"] == port, host
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == [f"alertmanager:{OBSERVABILITY['alertmanager']}"]


def test_compose_alertmanager_runs_the_committed_example(observed: dict[str, Any]) -> None:
    spec = observed["alertmanager"]
    config = next(arg for arg in spec["command"] if arg.startswith("--config.file="))
    source = mounts(spec)[config.partition("=")[2]]
    assert source == REPO / "deploy" / "alertmanager" / "alertmanager.yml"


def dashboard_panels() -> dict[str, dict[str, Any]]:
    """The Grafana dashboard's panels by title."""
    dashboard = json.loads((GRAFANA / "dashboards" / "arquitetura.json").read_text())
    return {panel["title"]: panel for panel in dashboard["panels"]}


def test_grafana_dashboard_has_the_panels_of_the_monitors_dashboard() -> None:
    html = DASHBOARD_HTML.read_text()
    # The tiles are a section named by its aria-label; every other panel by its caption.
    tiles = re.search(r'id="tiles"[^>]*aria-label="(\w+)"', html)
    assert tiles is not None
    captions = re.findall(r"<(?:figcaption|h2)[^>]*>([^<]+)", html)
    wanted = {tiles[1].capitalize()} | {caption.strip() for caption in captions}
    assert set(dashboard_panels()) == wanted


def test_grafana_panel_queries_are_valid_promql_over_the_committed_records(
    tmp_path: Path,
) -> None:
    records = {
        rule["record"]
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    queries = [
        target["expr"] for panel in dashboard_panels().values() for target in panel["targets"]
    ]
    for expr in queries:
        used = set(re.findall(r"\b[a-z_]+:[a-z0-9_:]+", expr))
        assert used <= records, f"{expr}: no such recording rule {used - records}"
    # promtool parses each query as the expression of a recording rule.
    rules = [{"record": f"grafana:panel:{i}", "expr": expr} for i, expr in enumerate(queries)]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_is_provisioned_with_the_profiles_prometheus_and_the_dashboard(
    observed: dict[str, Any],
) -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    (datasource,) = datasources
    assert datasource["url"] == f"http://prometheus:{OBSERVABILITY['prometheus']}"
    uids = {
        target["datasource"]["uid"]
        for panel in dashboard_panels().values()
        for target in panel["targets"]
    }
    assert uids == {datasource["uid"]}
    mounted = mounts(observed["grafana"])
    assert mounted["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "arquitetura.yml").read_text()
    )["providers"][0]
    assert mounted[provider["options"]["path"]] == GRAFANA / "dashboards"
    # No default admin password: a random one nobody sees; anyone on loopback may only look.
    assert "GF_SECURITY_ADMIN_PASSWORD=" in " ".join(observed["grafana"]["command"])
    assert "/dev/urandom" in " ".join(observed["grafana"]["command"])
    environment = observed["grafana"]["environment"]
    assert environment["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"
    assert environment["GF_AUTH_BASIC_ENABLED"] == "false"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
