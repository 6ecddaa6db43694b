"""deploy/k8s: every overlay renders with kubectl kustomize and passes strict validation."""

import functools
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import REPO, kubectl, run, venv_tool

OVERLAYS = ["dev", "prod"]
NAMESPACES = {"dev": "arquitetura-dev", "prod": "arquitetura"}
KUBERNETES_VERSION = "1.32.0"
SECRET = "arquitetura-secrets"
SERVICES = ["api_gateway", "load_balancer", "server", "cache", "monitoring"]
Manifest = dict[str, Any]


@functools.cache
def render(overlay: str) -> list[Manifest]:
    """The overlay as kubectl would apply it (rendered once; do not modify)."""
    output = run(kubectl(), "kustomize", str(REPO / "deploy/k8s/overlays" / overlay)).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    """Manifests of one kind by name."""
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    """(name, rendered manifests) of each overlay."""
    return request.param, render(request.param)


def containers(manifests: list[Manifest]) -> dict[str, Manifest]:
    """Every Deployment's containers by name."""
    return {
        container["name"]: container
        for deployment in of_kind(manifests, "Deployment").values()
        for container in deployment["spec"]["template"]["spec"]["containers"]
    }


def secret_env(container: Manifest) -> dict[str, str]:
    """Variables taken from the Secret: name -> key."""
    return {
        var["name"]: ref["key"]
        for var in container.get("env", [])
        if (ref := var.get("valueFrom", {}).get("secretKeyRef")) and ref["name"] == SECRET
    }


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


# --- NetworkPolicies, evaluated offline -------------------------------------------------------
# Each overlay's policies are run over every pod of its namespace plus stand-ins for the world
# outside it: an ingress controller's pod, any other pod of the cluster, the cluster DNS (which
# only answers), and an address outside the cluster. The edges that come out are
# (from, to, port/protocol).

INGRESS_CONTROLLER = "ingress-controller"
OTHER_POD = "pod-of-another-namespace"
KUBE_DNS = "kube-dns"
OUTSIDE = "outside"  # any address outside the cluster: managed PostgreSQL and Redis in prod
Edge = tuple[str, str, str]


@dataclass(frozen=True)
class Endpoint:
    """A pod (labels in a namespace) or an address outside the cluster (ip)."""

    name: str
    namespace: str | None
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    # (port, protocol, name) it listens on.
    ports: tuple[tuple[int, str, str | None], ...] = ()
    ip: str | None = None

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace or ""}


DNS_PORTS = ((53, "UDP", None), (53, "TCP", None))
OUTSIDERS = [
    Endpoint(
        INGRESS_CONTROLLER,
        "ingress-nginx",
        {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
    ),
    Endpoint(OTHER_POD, "default", {"app": "something-else"}),
    Endpoint(KUBE_DNS, "kube-system", {"k8s-app": "kube-dns"}, DNS_PORTS),
    Endpoint(
        OUTSIDE,
        None,
        ports=(*((port, "TCP", None) for port in (80, 443, 5432, 6379)), (53, "UDP", None)),
        ip="203.0.113.7",
    ),
]


def validate(manifests: list[Manifest], rendered: Path) -> None:
    """kubernetes-validate --strict over these manifests, written to rendered first."""
    rendered.write_text(yaml.safe_dump_all(manifests))
    run(
        venv_tool("kubernetes-validate"),
        "--strict",
        "--quiet",
        "--kubernetes-version",
        KUBERNETES_VERSION,
        str(rendered),
    )


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against a set of labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        if operator in {"In", "NotIn"}:
            matched = (labels.get(key) in expression["values"]) == (operator == "In")
        else:
            matched = (key in labels) == (operator == "Exists")
        if not matched:
            return False
    return True


def pods(manifests: list[Manifest], namespace: str) -> list[Endpoint]:
    """Every workload's pod as an endpoint with its labels and container ports."""
    workloads = of_kind(manifests, "Deployment") | of_kind(manifests, "StatefulSet")
    return [
        Endpoint(
            name,
            namespace,
            workload["spec"]["template"]["metadata"]["labels"],
            tuple(
                (port["containerPort"], port.get("protocol", "TCP"), port.get("name"))
                for container in workload["spec"]["template"]["spec"]["containers"]
                for port in container.get("ports", [])
            ),
        )
        for name, workload in workloads.items()
    ]


def peer_matches(peer: Manifest, endpoint: Endpoint, namespace: str) -> bool:
    """One entry of a rule's from/to against an endpoint."""
    if "ipBlock" in peer:
        if endpoint.ip is None:
            return False
        address = ipaddress.ip_address(endpoint.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except", [])
        )
    if endpoint.namespace is None:
        return False
    if "namespaceSelector" in peer:
        in_namespace = selects(peer["namespaceSelector"], endpoint.namespace_labels)
    else:
        in_namespace = endpoint.namespace == namespace
    return in_namespace and selects(peer.get("podSelector", {}), endpoint.labels)


def port_matches(rule_port: Manifest, port: tuple[int, str, str | None]) -> bool:
    number, protocol, name = port
    if rule_port.get("protocol", "TCP") != protocol:
        return False
    wanted: int | str | None = rule_port.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return wanted == name
    last: int = rule_port.get("endPort", wanted)
    return wanted <= number <= last


def allowed(
    policies: list[Manifest],
    direction: str,
    subject: Endpoint,
    *,
    peer: Endpoint,
    port: tuple[int, str, str | None],
    namespace: str,
) -> bool:
    """Whether the subject's policies let traffic in from (or out to) the peer on the port."""
    if subject.namespace != namespace:
        return True  # outside the namespace: none of these policies applies
    key, rules_key = ("from", "ingress") if direction == "Ingress" else ("to", "egress")
    isolating = [
        policy["spec"]
        for policy in policies
        if selects(policy["spec"]["podSelector"], subject.labels)
        and direction in policy["spec"].get("policyTypes", ["Ingress"])
    ]
    if not isolating:
        return True
    return any(
        (not rule.get(key) or any(peer_matches(p, peer, namespace) for p in rule[key]))
        and (not rule.get("ports") or any(port_matches(p, port) for p in rule["ports"]))
        for spec in isolating
        for rule in spec.get(rules_key, [])
    )


def traffic_graph(overlay: str) -> set[Edge]:
    """Every (from, to, port/protocol) the overlay's NetworkPolicies let through."""
    manifests = render(overlay)
    namespace = NAMESPACES[overlay]
    policies = list(of_kind(manifests, "NetworkPolicy").values())
    endpoints = pods(manifests, namespace) + OUTSIDERS
    return {
        (source.name, target.name, f"{port[0]}/{port[1]}")
        for source in endpoints
        for target in endpoints
        if source is not target
        and source.name != KUBE_DNS
        and namespace in {source.namespace, target.namespace}
        for port in target.ports
        if allowed(policies, "Egress", source, peer=target, port=port, namespace=namespace)
        and allowed(policies, "Ingress", target, peer=source, port=port, namespace=namespace)
    }


APP = ["api-gateway", "load-balancer", "server", "cache", "monitoring"]
SERVICE_PORTS = {"api-gateway": 8000, "load-balancer": 8001, "server": 8002, "cache": 8004}
# Who holds a DATABASE_URL / REDIS_URL (checked against the manifests below).
POSTGRES_CLIENTS = {"api-gateway", "server"}
REDIS_CLIENTS = {"api-gateway", "server", "cache"}


def expected_graph(overlay: str) -> set[Edge]:
    edges = {
        (INGRESS_CONTROLLER, "api-gateway", "8000/TCP"),
        # "Any namespace" until narrowed to the controller's (see the policy's comment).
        (OTHER_POD, "api-gateway", "8000/TCP"),
        ("api-gateway", "load-balancer", "8001/TCP"),
        ("load-balancer", "server", "8002/TCP"),
        # ITEMS_OPENAPI_URL: the gateway merges the servers' /openapi.json into its /docs.
        ("api-gateway", "server", "8002/TCP"),
    }
    edges |= {("monitoring", name, f"{port}/TCP") for name, port in SERVICE_PORTS.items()}
    edges |= {(name, KUBE_DNS, f"53/{protocol}") for name in APP for protocol in ("UDP", "TCP")}
    edges |= {(name, OUTSIDE, "5432/TCP") for name in POSTGRES_CLIENTS}
    edges |= {(name, OUTSIDE, "6379/TCP") for name in REDIS_CLIENTS}
    if overlay == "dev":
        edges |= {(name, "postgres", "5432/TCP") for name in POSTGRES_CLIENTS}
        edges |= {(name, "redis", "6379/TCP") for name in REDIS_CLIENTS}
    return edges


def test_a_default_deny_policy_isolates_every_pod_of_the_namespace(
    overlay: tuple[str, list[Manifest]],
) -> None:
    name, manifests = overlay
    deny_all = [
        policy["spec"]
        for policy in of_kind(manifests, "NetworkPolicy").values()
        if {"Ingress", "Egress"} <= set(policy["spec"].get("policyTypes", []))
        and not policy["spec"].get("ingress")
        and not policy["spec"].get("egress")
    ]
    assert deny_all, "no policy denies all ingress and egress"
    for pod in pods(manifests, NAMESPACES[name]):
        assert any(selects(spec["podSelector"], pod.labels) for spec in deny_all), pod.name


def test_network_policies_allow_exactly_the_routes_the_services_use(
    overlay: tuple[str, list[Manifest]],
) -> None:
    name, manifests = overlay
    env = {
        service: {var["name"] for var in container.get("env", [])}
        for service, container in containers(manifests).items()
    }
    assert {service for service, names in env.items() if "DATABASE_URL" in names} == (
        POSTGRES_CLIENTS
    )
    assert {service for service, names in env.items() if "REDIS_URL" in names} == REDIS_CLIENTS
    (config,) = of_kind(manifests, "ConfigMap").values()
    assert config["data"]["ITEMS_OPENAPI_URL"].startswith("http://server:8002/")

    graph = traffic_graph(name)
    expected = expected_graph(name)
    assert graph == expected, (
        f"allowed but not expected: {sorted(graph - expected)}; "
        f"expected but denied: {sorted(expected - graph)}"
    )
    # Nothing reaches the dashboard: kubectl port-forward goes through the kubelet instead.
    assert not any(target == "monitoring" for _, target, _ in graph)


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
