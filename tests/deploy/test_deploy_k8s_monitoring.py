"""deploy/k8s/overlays/prometheus-operator: prod plus a ServiceMonitor and a PrometheusRule
generated from deploy/prometheus/, and the policy that lets Prometheus scrape."""

from pathlib import Path

import yaml

from tests.deploy.k8s import SECRET, Manifest, of_kind, render, validate
from tests.deploy.network_policies import OUTSIDERS, Endpoint, allowed, pods, selects
from tests.deploy.tools import REPO, script

OVERLAY = "prometheus-operator"
NAMESPACE = "arquitetura"
SCRIPT = REPO / "scripts" / "render_k8s_monitoring.py"
# The Operator's custom resources: kubernetes-validate knows only the built-in kinds.
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
# A Prometheus pod where kube-prometheus-stack puts it, and one it does not.
PROMETHEUS = Endpoint(
    "prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}, ip="10.1.2.3"
)
IMPOSTOR = Endpoint("prometheus", "default", {"app.kubernetes.io/name": "prometheus"})
Port = tuple[int, str, str | None]


def test_committed_manifests_are_the_scripts_output() -> None:
    generated = script("render_k8s_monitoring").rendered()
    assert {path.name for path in generated} == {"servicemonitor.yaml", "prometheusrule.yaml"}
    for path, text in generated.items():
        fix = f".venv/bin/python {SCRIPT.relative_to(REPO)}"
        assert path.read_text() == text, f"{path.name} is stale: run {fix}"


def test_prometheus_rule_holds_the_promtool_tested_rules_as_they_are() -> None:
    (rule,) = of_kind(render(OVERLAY), "PrometheusRule").values()
    committed = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text())
    assert rule["spec"]["groups"] == committed["groups"]
    assert rule["metadata"]["namespace"] == NAMESPACE


def test_overlay_is_prod_plus_the_operators_kinds_and_passes_strict_validation(
    tmp_path: Path,
) -> None:
    manifests = render(OVERLAY)
    identity = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    added = {("ServiceMonitor", "arquitetura"), ("PrometheusRule", "arquitetura")}
    added.add(("NetworkPolicy", "allow-prometheus"))
    prod = {(m["kind"], m["metadata"]["name"]) for m in render("prod")}
    assert sorted(identity) == sorted(prod | added)
    # Validated explicitly without the CRD kinds, which the schemas cannot know.
    built_in = [m for m in manifests if m["kind"] not in OPERATOR_KINDS]
    assert len(manifests) - len(built_in) == len(OPERATOR_KINDS)
    validate(built_in, tmp_path / f"{OVERLAY}.yaml")


def test_service_monitor_scrapes_every_service_as_job_arquitetura_with_the_token() -> None:
    manifests = render(OVERLAY)
    (monitor,) = of_kind(manifests, "ServiceMonitor").values()
    spec = monitor["spec"]
    (endpoint,) = spec["endpoints"]
    services = of_kind(manifests, "Service")
    selected = {
        name
        for name, service in services.items()
        if selects(spec["selector"], service["metadata"]["labels"])
    }
    # Every Service but the headless "-pods" ones the monitor discovers pods by (the same
    # pods again: scraping them too would count every series twice).
    discovery = {name for name in services if name.endswith("-pods")}
    assert discovery == {"api-gateway-pods", "load-balancer-pods", "server-pods", "cache-pods"}
    assert (
        selected
        == set(services) - discovery
        == {"api-gateway", "load-balancer", "server", "cache", "monitoring"}
    )
    for name in selected:
        metadata, ports = services[name]["metadata"], services[name]["spec"]["ports"]
        assert endpoint["port"] in {port["name"] for port in ports}, name
        # The rules select up{job="arquitetura"}: jobLabel's value on each Service.
        assert metadata["labels"][spec["jobLabel"]] == "arquitetura", name
    credentials = endpoint["authorization"]["credentials"]
    assert credentials == {"name": SECRET, "key": "METRICS_TOKEN"}
    assert endpoint["path"] == "/metrics"


def test_prometheus_pods_may_scrape_every_port_and_nothing_else_changes() -> None:
    manifests = render(OVERLAY)
    policies = list(of_kind(manifests, "NetworkPolicy").values())
    prod_policies = list(of_kind(render("prod"), "NetworkPolicy").values())

    def lets_in(policies: list[Manifest], pod: Endpoint, peer: Endpoint, port: Port) -> bool:
        return allowed(policies, "Ingress", pod, peer=peer, port=port, namespace=NAMESPACE)

    for pod in pods(manifests, NAMESPACE):
        for port in pod.ports:
            assert lets_in(policies, pod, PROMETHEUS, port), (pod.name, port)
            # A pod of the same name elsewhere gets only what prod already let it reach.
            for peer in (IMPOSTOR, *OUTSIDERS):
                assert lets_in(policies, pod, peer, port) == lets_in(
                    prod_policies, pod, peer, port
                ), (pod.name, peer.name, port)
            assert not lets_in(prod_policies, pod, PROMETHEUS, port) or pod.name == "api-gateway"
