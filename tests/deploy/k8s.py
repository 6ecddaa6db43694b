"""What the Kubernetes tests share: each overlay rendered once with kubectl kustomize, its
manifests by kind, strict schema validation, and where pods take the Secret's keys."""

import functools
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import REPO, kubectl, run, venv_tool

OVERLAYS = ["dev", "prod"]
NAMESPACES = {"dev": "arquitetura-dev", "prod": "arquitetura"}
KUBERNETES_VERSION = "1.32.0"
SECRET = "arquitetura-secrets"
SERVICES = ["api_gateway", "load_balancer", "server", "cache", "monitoring"]
# Their Deployments' and containers' names.
APP = [service.replace("_", "-") for service in SERVICES]
Manifest = dict[str, Any]


@functools.cache
def render(overlay: str) -> list[Manifest]:
    """The overlay as kubectl would apply it (rendered once; do not modify)."""
    output = run(kubectl(), "kustomize", str(REPO / "deploy/k8s/overlays" / overlay)).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    """Manifests of one kind by name."""
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


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
