"""NetworkPolicies evaluated offline: an overlay's policies run over every pod of its namespace
plus stand-ins for the world outside it (an ingress controller's pod, any other pod of the
cluster, the cluster DNS, which only answers, and an address outside the cluster). The edges
that come out are (from, to, port/protocol)."""

import ipaddress
from dataclasses import dataclass, field

from tests.deploy.k8s import NAMESPACES, Manifest, of_kind, render

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
