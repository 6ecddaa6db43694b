"""docker-compose.yml: valid, secrets only from .env, nothing published that should not be."""

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.compose import (
    COMPOSE_FILE,
    LOOPBACK_ONLY,
    NOFILE,
    OBSERVABILITY,
    PUBLIC,
    SECRETS,
    compose_config,
    example_values,
    filled_example,
)
from tests.deploy.tools import run, venv_tool


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose file as compose resolves it, from the filled-in example, every profile on.

    The v1 CLI renders profiled services with or without --profile, v2 only with it.
    """
    directory = tmp_path_factory.mktemp("compose")
    result = compose_config(directory, filled_example(), profiles=("observability",))
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_file_matches_the_compose_spec() -> None:
    run(venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE))


def test_compose_config_is_valid_with_the_filled_in_example(tmp_path: Path) -> None:
    result = compose_config(tmp_path, filled_example(), "-q")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("secret", SECRETS)
def test_compose_refuses_to_run_without_a_secret(tmp_path: Path, secret: str) -> None:
    result = compose_config(tmp_path, filled_example() | {secret: ""}, "-q")
    assert result.returncode != 0
    assert secret in result.stderr


def test_env_example_commits_no_secret_value() -> None:
    values = example_values()
    assert {name: values[name] for name in SECRETS} == dict.fromkeys(SECRETS, "")
    assert values["FIRST_ADMIN_USERNAME"] == "admin"
    assert "DEMO_USERS" not in values  # only as a commented-out line


def test_each_secret_reaches_only_the_services_that_read_it(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    apps = set(PUBLIC) | set(LOOPBACK_ONLY)
    holders = {
        secret: {name for name, spec in services.items() if secret in spec.get("environment", {})}
        for secret in (
            "METRICS_TOKEN",
            "FIRST_ADMIN_PASSWORD",
            "FIRST_ADMIN_USERNAME",
            "DEMO_USERS",
        )
    }
    assert holders == {
        # The monitor and Prometheus included: they send the token when they scrape.
        "METRICS_TOKEN": apps | {"prometheus"},
        "FIRST_ADMIN_PASSWORD": {"api_gateway"},
        "FIRST_ADMIN_USERNAME": {"api_gateway"},
        "DEMO_USERS": {"api_gateway"},
    }
    assert all(services[name]["environment"]["DEV_MODE"] == "false" for name in apps)


def test_app_services_may_open_enough_files_for_max_connections(rendered: dict[str, Any]) -> None:
    for name, spec in rendered["services"].items():
        if name in PUBLIC or name in LOOPBACK_ONLY:
            assert spec.get("ulimits", {}).get("nofile") == NOFILE, name


def test_only_the_gateway_is_published_beyond_loopback(
    rendered: dict[str, Any],
) -> None:
    for name, spec in rendered["services"].items():
        ports = [str(port) for port in spec.get("ports", [])]
        if name in PUBLIC:
            assert len(ports) == 1, name
            assert "127.0.0.1" not in ports[0], name
            assert str(PUBLIC[name]) in ports[0], name
        elif name in LOOPBACK_ONLY or name in OBSERVABILITY:
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
