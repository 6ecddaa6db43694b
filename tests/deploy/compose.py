"""What the compose tests share: the committed compose file rendered with chosen .env values,
and scripts/compose_up.py, which writes that .env."""

import os
import subprocess
import sys
from pathlib import Path

from tests.deploy.tools import REPO, compose_cli, script

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


def filled_example() -> dict[str, str]:
    """.env.example with its secrets generated as `make compose-up` does."""
    text, _ = script("compose_up").fill_secrets(ENV_EXAMPLE.read_text(), {})
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
