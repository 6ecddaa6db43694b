"""deploy/k8s: every overlay renders with kubectl kustomize and passes strict validation."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import REPO, kubectl, run, venv_tool

OVERLAYS = ["dev", "prod"]
KUBERNETES_VERSION = "1.32.0"
Manifest = dict[str, Any]


def render(overlay: str) -> list[Manifest]:
    """The overlay as kubectl would apply it."""
    output = run(kubectl(), "kustomize", str(REPO / "deploy/k8s/overlays" / overlay)).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    """Manifests of one kind by name."""
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    """(name, rendered manifests) of each overlay."""
    return request.param, render(request.param)


def test_overlay_passes_strict_schema_validation(
    overlay: tuple[str, list[Manifest]], tmp_path: Path
) -> None:
    name, manifests = overlay
    rendered = tmp_path / f"{name}.yaml"
    rendered.write_text(yaml.safe_dump_all(manifests))
    run(
        venv_tool("kubernetes-validate"),
        "--strict",
        "--quiet",
        "--kubernetes-version",
        KUBERNETES_VERSION,
        str(rendered),
    )


def test_every_container_has_probes_limits_and_runs_non_root(
    overlay: tuple[str, list[Manifest]],
) -> None:
    _, manifests = overlay
    workloads = of_kind(manifests, "Deployment") | of_kind(manifests, "StatefulSet")
    for name, workload in workloads.items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            assert {"readinessProbe", "livenessProbe"} <= container.keys(), name
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), name
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_servers_scale_behind_a_headless_service_the_balancer_resolves(
    overlay: tuple[str, list[Manifest]],
) -> None:
    _, manifests = overlay
    hpa = of_kind(manifests, "HorizontalPodAutoscaler")["server"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "server"
    assert hpa["spec"]["minReplicas"] >= 2
    assert of_kind(manifests, "Deployment")["server"]["spec"]["replicas"] >= 2
    assert of_kind(manifests, "Service")["server"]["spec"]["clusterIP"] == "None"
    (config,) = of_kind(manifests, "ConfigMap").values()
    assert config["data"]["SERVIDORES"] == "http://server:8002"


def test_every_replicated_deployment_has_a_disruption_budget(
    overlay: tuple[str, list[Manifest]],
) -> None:
    _, manifests = overlay
    budgets = of_kind(manifests, "PodDisruptionBudget")
    for name, deployment in of_kind(manifests, "Deployment").items():
        if deployment["spec"]["replicas"] > 1:
            assert budgets[name]["spec"]["minAvailable"] < deployment["spec"]["replicas"], name


def test_dev_runs_postgres_and_redis_in_the_cluster_and_prod_uses_external_ones() -> None:
    dev, prod = render("dev"), render("prod")
    assert set(of_kind(dev, "StatefulSet")) == {"postgres", "redis"}
    assert of_kind(prod, "StatefulSet") == {}
    assert "arquitetura-secrets" in of_kind(dev, "Secret")
    assert of_kind(prod, "Secret") == {}, "production secrets are never committed"


def test_probes_ask_livez_and_readyz_and_prod_trusts_the_ingress_for_client_addresses() -> None:
    prod = render("prod")
    for name, deployment in of_kind(prod, "Deployment").items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert container["livenessProbe"]["httpGet"]["path"] == "/livez", name
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
    (config,) = of_kind(prod, "ConfigMap").values()
    assert config["data"]["TRUSTED_PROXIES"]
