"""docker-compose.yml: valid, secrets only from .env, nothing published that should not be;
and compose-up's script, which makes that .env."""

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy.tools import REPO, compose_cli, run, venv_tool

COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
COMPOSE_UP = REPO / "scripts" / "compose_up.py"
SECRETS = ("SECRET_KEY", "POSTGRES_PASSWORD", "METRICS_TOKEN", "FIRST_ADMIN_PASSWORD")
NOFILE = {"soft": 65536, "hard": 65536}
PUBLIC = {"api_gateway": 8000}
LOOPBACK_ONLY = {
    "load_balancer": 8001,
    "server": 8002,
    "server2": 8003,
    "cache": 8004,
    "monitoring": 8005,
}
# The observability profile's services (tests/deploy/test_deploy_observability.py), loopback too.
OBSERVABILITY = {"prometheus": 9090, "alertmanager": 9093, "grafana": 3000, "jaeger": 16686}


def parse_env(text: str) -> dict[str, str]:
    """NAME=value lines as a dict."""
    pairs = (
        line.partition("=")
        for line in text.splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {name: value for name, _, value in pairs}


def example_values() -> dict[str, str]:
    """.env.example as a dict."""
    return parse_env(ENV_EXAMPLE.read_text())


def compose_config(
    tmp_path: Path, values: dict[str, str], *args: str, profiles: tuple[str, ...] = ()
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
            *(f"--profile={profile}" for profile in profiles),
            "config",
            *args,
        ],
        env=scrubbed,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def compose_up_module() -> ModuleType:
    """scripts/compose_up.py, imported (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("compose_up", COMPOSE_UP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def filled_example() -> dict[str, str]:
    """.env.example with its secrets generated as `make compose-up` does."""
    text, _ = compose_up_module().fill_secrets(ENV_EXAMPLE.read_text(), {})
    return parse_env(text)


def run_compose_up(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The script with --env-only, none of its secrets in the environment."""
    scrubbed = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [sys.executable, str(COMPOSE_UP), "--env-only", "--env-file", str(env_file), *args],
        env=scrubbed,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def read_env(path: Path) -> dict[str, str]:
    """An env file as a dict."""
    return parse_env(path.read_text())


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


def test_compose_up_creates_an_env_file_with_fresh_distinct_secrets(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    result = run_compose_up(env_file)
    values = read_env(env_file)
    generated = [values[name] for name in SECRETS]
    assert all(generated), values
    assert len(set(generated)) == len(SECRETS)
    assert len(values["FIRST_ADMIN_PASSWORD"]) >= 16
    assert values["FIRST_ADMIN_PASSWORD"].replace("-", "").replace("_", "").isalnum()
    int(values["POSTGRES_PASSWORD"], 16)  # hex: it goes into DATABASE_URL as it is
    assert len(values["SECRET_KEY"]) >= 32
    # Everything else as .env.example has it, comments included; readable by its owner only.
    others = {k: v for k, v in example_values().items() if k not in SECRETS}
    assert {k: values[k] for k in others} == others
    assert env_file.read_text().count("\n#") == ENV_EXAMPLE.read_text().count("\n#")
    assert env_file.stat().st_mode & 0o777 == 0o600
    # The admin's credentials, printed this once, and where they are kept.
    assert result.stdout.count(values["FIRST_ADMIN_PASSWORD"]) == 1, result.stdout
    assert "username: admin" in result.stdout
    assert str(env_file) in result.stdout
    for secret in ("SECRET_KEY", "POSTGRES_PASSWORD", "METRICS_TOKEN"):
        assert values[secret] not in result.stdout
    # And compose takes it as it is.
    assert compose_config(tmp_path, values, "-q").returncode == 0


def test_compose_up_never_overwrites_an_existing_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    run_compose_up(env_file)
    env_file.write_text(env_file.read_text() + "RATE_LIMIT=3/minute\n# mine\n")
    before = env_file.read_text()
    result = run_compose_up(env_file)
    assert env_file.read_text() == before
    assert result.stdout == ""
    assert read_env(env_file)["FIRST_ADMIN_PASSWORD"] not in result.stdout


def test_compose_up_fills_in_only_the_blank_secrets(tmp_path: Path) -> None:
    # A .env from before METRICS_TOKEN and FIRST_ADMIN_PASSWORD, one of them left blank.
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# mine\nSECRET_KEY=k" + "k" * 40 + "\nPOSTGRES_PASSWORD=abc123\nMETRICS_TOKEN=\n"
    )
    result = run_compose_up(env_file)
    lines = env_file.read_text().splitlines()
    assert lines[:3] == ["# mine", "SECRET_KEY=k" + "k" * 40, "POSTGRES_PASSWORD=abc123"]
    assert lines[3].startswith("METRICS_TOKEN=")  # filled in where it was
    assert lines[4].startswith("FIRST_ADMIN_PASSWORD=")  # added
    values = read_env(env_file)
    assert values["METRICS_TOKEN"]
    assert len(values["FIRST_ADMIN_PASSWORD"]) >= 16
    assert "METRICS_TOKEN, FIRST_ADMIN_PASSWORD" in result.stdout
    assert result.stdout.count(values["FIRST_ADMIN_PASSWORD"]) == 1
    assert values["METRICS_TOKEN"] not in result.stdout


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
