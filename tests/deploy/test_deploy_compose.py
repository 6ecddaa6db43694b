"""docker-compose.yml: valid, secrets only from .env, nothing published that should not be."""

import importlib
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import REPO, compose_cli, run, venv_tool

COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
PUBLIC = {"api_gateway": 8000}
LOOPBACK_ONLY = {
    "load_balancer": 8001,
    "server": 8002,
    "server2": 8003,
    "cache": 8004,
    "monitoring": 8005,
}


def example_values() -> dict[str, str]:
    """.env.example as a dict."""
    pairs = (
        line.partition("=")
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {name: value for name, _, value in pairs}


def compose_config(
    tmp_path: Path, values: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """`config` of the committed file with exactly these .env values (none from the shell)."""
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    scrubbed = {k: v for k, v in os.environ.items() if k not in example_values()}
    return subprocess.run(
        [
            *compose_cli(),
            "--project-directory",
            str(REPO),
            "--env-file",
            str(env_file),
            "-f",
            str(COMPOSE_FILE),
            "config",
            *args,
        ],
        env=scrubbed,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def filled_example() -> dict[str, str]:
    """.env.example filled in as the README says."""
    return example_values() | {
        "SECRET_KEY": secrets.token_hex(32),
        "POSTGRES_PASSWORD": secrets.token_hex(24),
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose file as compose resolves it, from the filled-in example."""
    result = compose_config(tmp_path_factory.mktemp("compose"), filled_example())
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_file_matches_the_compose_spec() -> None:
    run(venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE))


def test_compose_config_is_valid_with_the_filled_in_example(tmp_path: Path) -> None:
    result = compose_config(tmp_path, filled_example(), "-q")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("secret", ["SECRET_KEY", "POSTGRES_PASSWORD"])
def test_compose_refuses_to_run_without_a_secret(tmp_path: Path, secret: str) -> None:
    result = compose_config(tmp_path, filled_example() | {secret: ""}, "-q")
    assert result.returncode != 0
    assert secret in result.stderr


def test_env_example_commits_no_secret_value() -> None:
    values = example_values()
    assert values["SECRET_KEY"] == ""
    assert values["POSTGRES_PASSWORD"] == ""


def test_only_the_gateway_is_published_beyond_loopback(
    rendered: dict[str, Any],
) -> None:
    for name, spec in rendered["services"].items():
        ports = [str(port) for port in spec.get("ports", [])]
        if name in PUBLIC:
            assert len(ports) == 1, name
            assert "127.0.0.1" not in ports[0], name
            assert str(PUBLIC[name]) in ports[0], name
        elif name in LOOPBACK_ONLY:
            assert len(ports) == 1, name
            assert "127.0.0.1" in ports[0], name
        else:
            assert not ports, f"{name} must not be published"


def test_every_service_is_health_checked_and_restarted(rendered: dict[str, Any]) -> None:
    for name, spec in rendered["services"].items():
        assert spec.get("restart") == "unless-stopped", name
        image_checked = "build" in spec  # the HEALTHCHECK is in the service's Dockerfile
        assert image_checked or "healthcheck" in spec, name
        for dependency in spec.get("depends_on", {}).values():
            assert dependency["condition"] == "service_healthy", name


def test_postgres_and_redis_sit_on_the_internal_network_only(rendered: dict[str, Any]) -> None:
    for name in ("postgres", "redis"):
        assert list(rendered["services"][name]["networks"]) == ["backend"], name
    assert rendered["networks"]["backend"]["internal"] is True
    assert "postgres-data" in rendered["volumes"]


@pytest.mark.parametrize(
    ("service", "settings"),
    [
        ("api_gateway", "api_gateway.config:GatewaySettings"),
        ("load_balancer", "load_balancer.config:BalancerSettings"),
        ("server", "server.config:ServerSettings"),
        ("server2", "server.config:ServerSettings"),
        ("cache", "cache.config:CacheSettings"),
        ("monitoring", "monitoring.config:MonitorSettings"),
    ],
)
def test_every_setting_of_a_service_can_be_set_from_env(service: str, settings: str) -> None:
    module, _, name = settings.partition(":")
    fields = importlib.import_module(module).__dict__[name].model_fields
    wanted = {(field.alias or key).upper() for key, field in fields.items()}
    # Only HS256 is allowed, and each container is one service (the servers name theirs).
    wanted -= {"JWT_ALGORITHM", "SERVICE_NAME"}
    environment = yaml.safe_load(COMPOSE_FILE.read_text())["services"][service]["environment"]
    assert wanted <= set(environment), f"not passed to {service}: {wanted - set(environment)}"
