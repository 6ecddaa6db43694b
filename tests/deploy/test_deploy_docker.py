"""Each service's Dockerfile: hadolint clean, multi-stage, non-root, health-checked."""

import json
import re
import tomllib

import pytest

from tests.deploy.tools import REPO, run, venv_tool

# Dockerfile folder -> package it runs with `python -m`
IMAGES = {
    "api_gateway": "api_gateway",
    "load_balancer": "load_balancer",
    "server": "server",
    "server2": "server",
    "cache": "cache",
    "monitoring": "monitoring",
}


def instructions(folder: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / folder / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def workspace_members() -> list[str]:
    """The uv workspace members, from the root pyproject."""
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    return list(root["tool"]["uv"]["workspace"]["members"])


def test_dockerfiles_pass_hadolint() -> None:
    run(venv_tool("hadolint"), *(f"{REPO / folder}/Dockerfile" for folder in IMAGES))


@pytest.mark.parametrize("folder", IMAGES)
def test_image_is_multi_stage_non_root_and_health_checked(folder: str) -> None:
    steps = instructions(folder)
    kinds = [kind for kind, _ in steps]
    assert kinds.count("FROM") == 2, "a builder stage and a slim runtime stage"
    runtime = steps[max(i for i, (kind, _) in enumerate(steps) if kind == "FROM") :]
    uid = next(args for kind, args in runtime if kind == "USER").split(":")[0]
    assert uid.isdigit(), "numeric USER, so Kubernetes can check runAsNonRoot"
    assert uid != "0"
    assert any(kind == "HEALTHCHECK" and "/saude" in args for kind, args in runtime)
    cmd = json.loads(next(args for kind, args in runtime if kind == "CMD"))
    assert cmd == ["python", "-m", IMAGES[folder]], "exec form, so SIGTERM reaches uvicorn"


@pytest.mark.parametrize("folder", IMAGES)
def test_builder_copies_every_workspace_manifest(folder: str) -> None:
    copies = {args.split()[0] for kind, args in instructions(folder) if kind == "COPY"}
    for member in workspace_members():
        assert f"{member}/pyproject.toml" in copies, f"uv cannot read the lock without {member}"


def test_server2_image_differs_from_server_only_in_name_and_port() -> None:
    def shape(folder: str) -> list[tuple[str, str]]:
        return [step for step in instructions(folder) if step[0] not in {"ENV", "EXPOSE"}]

    assert shape("server2") == shape("server")
    env = " ".join(args for kind, args in instructions("server2") if kind == "ENV")
    assert "SERVICE_NAME=server2" in env
    assert "PORTA=8003" in env
    assert not list((REPO / "server2").rglob("*.py")), "server2 holds no code of its own"


def test_build_context_admits_exactly_the_workspace() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allowlist: .env, .venv and data/ can never enter an image"
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert admitted == {"pyproject.toml", "uv.lock", *workspace_members()}
