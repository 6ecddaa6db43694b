"""docker-compose.yml driven as a user would: .env from .env.example, build, up, down -v."""

import json
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.compose.engine import docker_cli
from tests.deploy.tools import compose_cli
from tests.integration.stack import free_port

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
# compose service -> (port inside the container, .env variable that publishes it)
PUBLISHED = {
    "api_gateway": (8000, "GATEWAY_PORT"),
    "load_balancer": (8001, "BALANCER_PORT"),
    "server": (8002, "SERVER_PORT"),
    "server2": (8003, "SERVER2_PORT"),
    "cache": (8004, "CACHE_PORT"),
    "monitoring": (8005, "MONITOR_PORT"),
}
HEALTHY_TIMEOUT = 240.0
CORS_ORIGIN = "https://app.example.org"


def env_file_from_example(target: Path, ports: dict[str, int]) -> dict[str, str]:
    """Fill .env.example as the README tells a user to: fresh secrets, and our own ports."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[name.strip()] = value.strip()
    values["SECRET_KEY"] = secrets.token_hex(32)
    values["POSTGRES_PASSWORD"] = secrets.token_hex(24)
    for service, port in ports.items():
        values[PUBLISHED[service][1]] = str(port)
    # A setting only .env carries, as a user would add one: it must reach the gateway.
    values["CORS_ORIGINS"] = CORS_ORIGIN
    target.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return values


@dataclass
class ComposeProject:
    """One compose project on a given engine environment."""

    name: str
    workdir: Path
    engine_env: dict[str, str]
    isolated_engine: bool = False
    ports: dict[str, int] = field(default_factory=lambda: {s: free_port() for s in PUBLISHED})
    values: dict[str, str] = field(default_factory=dict)

    @property
    def env_file(self) -> Path:
        """The .env this run uses (never the developer's own .env)."""
        return self.workdir / "compose.env"

    def files(self) -> list[str]:
        """The committed compose file, plus what an engine with no route out needs.

        Builds reach apt and PyPI through the host's network. At run time Docker's DNS has no
        upstream to forward an unknown name to (a killed container's): where a normal engine
        gets NXDOMAIN at once, here the lookup would hang for glibc's 2 x 5 s. One try of one
        second keeps that the engine's quirk rather than the balancer's failover time.
        """
        args = ["-f", str(COMPOSE_FILE)]
        if self.isolated_engine:
            services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
            override = {
                "services": {
                    name: {"dns_opt": ["timeout:1", "attempts:1"]}
                    | ({"build": {"network": "host"}} if "build" in spec else {})
                    for name, spec in services.items()
                }
            }
            path = self.workdir / "compose.isolated-engine.yml"
            path.write_text(yaml.safe_dump(override))
            args += ["-f", str(path)]
        return args

    def compose(
        self, *args: str, check: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        """Run a compose command for this project."""
        if not self.values:
            self.values = env_file_from_example(self.env_file, self.ports)
        command = [
            *compose_cli(),
            "--project-name",
            self.name,
            "--project-directory",
            str(REPO),
            "--env-file",
            str(self.env_file),
            *self.files(),
            *args,
        ]
        result = subprocess.run(
            command,
            env=self.engine_env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def container(self, service: str) -> str:
        """The id of a service's container."""
        return self.compose("ps", "-q", service).stdout.strip()

    def inspect(self, service: str) -> dict[str, object]:
        """`docker inspect` of a service's container."""
        result = subprocess.run(
            [docker_cli(), "inspect", self.container(service)],
            env=self.engine_env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        data: list[dict[str, object]] = json.loads(result.stdout)
        return data[0]

    def health(self, service: str) -> str:
        """Docker's health status of a service's container ('healthy', 'starting', ...)."""
        state = self.inspect(service)["State"]
        assert isinstance(state, dict)
        return str(state.get("Health", {}).get("Status", state.get("Status")))

    def services(self) -> list[str]:
        """Every service of the compose file."""
        return self.compose("config", "--services").stdout.split()

    def wait_healthy(self, services: list[str], timeout: float = HEALTHY_TIMEOUT) -> None:
        """Block until every named service's container reports healthy."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = {s: self.health(s) for s in services}
            if all(state == "healthy" for state in states.values()):
                return
            time.sleep(2)
        logs = self.compose("logs", "--no-color", "--tail=40", check=False).stdout
        raise RuntimeError(f"not healthy after {timeout:.0f}s: {states}\n{logs[-6000:]}")

    def url(self, service: str) -> str:
        """Where a published service answers on this machine."""
        return f"http://127.0.0.1:{self.ports[service]}"
