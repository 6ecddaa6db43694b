"""deploy/k8s: every overlay renders with kubectl kustomize and passes strict validation; its
workloads scale, are probed and limited, and take their secrets from the Secret."""

import re
from pathlib import Path

from tests.deploy.k8s import (
    APP,
    NAMESPACES,
    SECRET,
    SERVICES,
    Manifest,
    containers,
    of_kind,
    render,
    secret_env,
    validate,
)
from tests.deploy.tools import REPO


def test_overlay_with_its_network_policies_passes_strict_schema_validation(
    overlay: tuple[str, list[Manifest]], tmp_path: Path
) -> None:
    name, manifests = overlay
    policies = of_kind(manifests, "NetworkPolicy")
    assert {"default-deny", "allow-dns", "api-gateway"} <= policies.keys()
    assert {p["metadata"]["namespace"] for p in policies.values()} == {NAMESPACES[name]}
    validate(manifests, tmp_path / f"{name}.yaml")


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


def token_verifiers() -> set[str]:
    """Services whose settings verify the gateway's JWTs (their Settings class is AuthSettings)."""
    verifiers = set()
    for service in SERVICES:
        source = (REPO / service / "src" / service / "config.py").read_text()
        bases = re.findall(r"^class \w+\((.*)\):", source, flags=re.MULTILINE)
        if any("AuthSettings" in base for base in bases):
            verifiers.add(service.replace("_", "-"))
    return verifiers


def test_every_service_gets_metrics_token_and_every_token_verifier_secret_key_from_the_secret(
    overlay: tuple[str, list[Manifest]],
) -> None:
    _, manifests = overlay
    verifiers = token_verifiers()
    assert "api-gateway" in verifiers
    services = containers(manifests)
    assert set(APP) <= services.keys()
    for name in APP:
        from_secret = secret_env(services[name])
        assert from_secret.get("METRICS_TOKEN") == "METRICS_TOKEN", name
        if name in verifiers:
            assert from_secret.get("SECRET_KEY") == "SECRET_KEY", name
        plain = {var["name"] for var in services[name].get("env", []) if "value" in var}
        assert not plain & {"SECRET_KEY", "METRICS_TOKEN", "FIRST_ADMIN_PASSWORD"}, name


def test_only_the_gateway_gets_first_admin_password_from_the_secret(
    overlay: tuple[str, list[Manifest]],
) -> None:
    _, manifests = overlay
    holders = {
        name: secret_env(container).get("FIRST_ADMIN_PASSWORD")
        for name, container in containers(manifests).items()
        if "FIRST_ADMIN_PASSWORD" in {var["name"] for var in container.get("env", [])}
    }
    assert holders == {"api-gateway": "FIRST_ADMIN_PASSWORD"}


def test_the_secret_holds_every_key_the_pods_read() -> None:
    dev, prod = render("dev"), render("prod")

    def referenced(manifests: list[Manifest]) -> set[str]:
        workloads = of_kind(manifests, "Deployment") | of_kind(manifests, "StatefulSet")
        return {
            key
            for workload in workloads.values()
            for container in workload["spec"]["template"]["spec"]["containers"]
            for key in secret_env(container).values()
        }

    example = of_kind(dev, "Secret")[SECRET]["stringData"]
    assert referenced(dev) <= example.keys()
    password = example["FIRST_ADMIN_PASSWORD"]
    assert len(password) >= 12
    assert password.lower() not in {"admin", "admin123", "user123", "changeme", "password"}
    # The operator's `kubectl create secret` in the prod overlay's header names every key.
    header = (REPO / "deploy/k8s/overlays/prod/kustomization.yaml").read_text()
    assert referenced(prod) <= set(re.findall(r"--from-literal=(\w+)=", header))


TRUTHY = {"1", "true", "t", "yes", "y", "on"}


def test_prod_sets_neither_dev_mode_nor_demo_users() -> None:
    prod = render("prod")
    (config,) = of_kind(prod, "ConfigMap").values()
    assert config["data"]["DEV_MODE"] == "false"
    settings = [config["data"]] + [
        {var["name"]: var.get("value", "") for var in container.get("env", [])}
        for container in containers(prod).values()
    ]
    for values in settings:
        for name in ("DEV_MODE", "DEMO_USERS"):
            assert values.get(name, "false").strip().lower() not in TRUTHY, name
