"""deploy/k8s NetworkPolicies: a default deny over every pod, and exactly the routes the
services use allowed, in each overlay."""

from tests.deploy.k8s import APP, NAMESPACES, Manifest, containers, of_kind
from tests.deploy.network_policies import (
    INGRESS_CONTROLLER,
    KUBE_DNS,
    OTHER_POD,
    OUTSIDE,
    Edge,
    pods,
    selects,
    traffic_graph,
)

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
