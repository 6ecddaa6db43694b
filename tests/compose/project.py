"""docker-compose.yml driven as a user would: `make compose-up` with its .env, then down -v."""

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests.compose.engine import docker_cli
from tests.deploy.tools import compose_cli
from tests.integration.stack import free_port

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_UP = REPO / "scripts" / "compose_up.py"
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
UP_TIMEOUT = 900.0
CORS_ORIGIN = "https://app.example.org"
# docker-compose.yml's open-file limit for the six services (x-app).
NOFILE = 65536
CAP_SYS_RESOURCE = 24


def nofile_ceiling() -> int | None:
    """The most open files our own engine can give a container, when that is below NOFILE:
    dockerd runs with this process's limits, and without CAP_SYS_RESOURCE (some sandboxes
    drop it) runc cannot raise the hard limit past ours. None when NOFILE is possible."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard >= NOFILE:
        return None
    status = Path("/proc/self/status").read_text().splitlines()
    caps = int(next(line.split()[1] for line in status if line.startswith("CapEff:")), 16)
    return None if caps & (1 << CAP_SYS_RESOURCE) else hard


def read_env(path: Path) -> dict[str, str]:
    """An env file's NAME=value lines (the last of a name wins, as in compose)."""
    pairs = (
        line.partition("=")
        for line in path.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    return {name.strip(): value.strip() for name, _, value in pairs}


def set_env(path: Path, name: str, value: str | None) -> None:
    """Change (or, with None, drop) one line of an env file, or append it: a user's edit."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith(f"{name}=")]
    if value is not None:
        lines.append(f"{name}={value}")
    path.write_text("".join(f"{line}\n" for line in lines))


def login(client: httpx.Client, username: str, password: str) -> None:
    """Log client in: its requests carry the access token from now on."""
    response = client.post("/login", json={"username": username, "password": password})
    response.raise_for_status()
    client.headers["Authorization"] = f"Bearer {response.json()['data']['access_token']}"


@dataclass
class ComposeProject:
    """One compose project on a given engine environment."""

    name: str
    workdir: Path
    engine_env: dict[str, str]
    isolated_engine: bool = False
    ports: dict[str, int] = field(default_factory=lambda: {s: free_port() for s in PUBLISHED})
    # What the script printed when it created the env file, and what `make compose-up` did.
    setup_output: str = ""
    up_output: str = ""

    @property
    def env_file(self) -> Path:
        """The .env this run uses (never the developer's own .env)."""
        return self.workdir / "compose.env"

    @property
    def values(self) -> dict[str, str]:
        """The env file as it is now."""
        return read_env(self.env_file)

    def create_env_file(self) -> None:
        """As a user's first `make compose-up` does (same script), then a user's own edits:
        free ports, and a setting only .env carries (it must reach the gateway)."""
        result = subprocess.run(
            [sys.executable, str(COMPOSE_UP), "--env-only", "--env-file", str(self.env_file)],
            env=self.env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        self.setup_output = result.stdout + result.stderr
        for service, port in self.ports.items():
            set_env(self.env_file, PUBLISHED[service][1], str(port))
        set_env(self.env_file, "CORS_ORIGINS", CORS_ORIGIN)

    @property
    def nofile(self) -> int:
        """The open-file limit the app containers get here."""
        return (self.isolated_engine and nofile_ceiling()) or NOFILE

    def files(self) -> list[Path]:
        """The committed compose file, plus what an engine with no route out needs.

        Builds reach apt and PyPI through the host's network. At run time Docker's DNS has no
        upstream to forward an unknown name to (a killed container's): where a normal engine
        gets NXDOMAIN at once, here the lookup would hang for glibc's 2 x 5 s. One try of one
        second keeps that the engine's quirk rather than the balancer's failover time. And
        where our dockerd cannot raise the open-file limit (nofile_ceiling), the containers
        get the most it can give.
        """
        if not self.isolated_engine:
            return [COMPOSE_FILE]
        services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
        ulimits = {"nofile": {"soft": self.nofile, "hard": self.nofile}}
        override = {
            "services": {
                name: {"dns_opt": ["timeout:1", "attempts:1"]}
                | ({"build": {"network": "host"}} if "build" in spec else {})
                | ({"ulimits": ulimits} if "ulimits" in spec else {})
                for name, spec in services.items()
            }
        }
        path = self.workdir / "compose.isolated-engine.yml"
        path.write_text(yaml.safe_dump(override))
        return [COMPOSE_FILE, path]

    def env(self) -> dict[str, str]:
        """The engine's environment, naming this project and its files as compose reads them;
        ENV_FILE for `make compose-up`. Nothing of the shell's own compose settings."""
        example = read_env(REPO / ".env.example")
        inherited = {k: v for k, v in self.engine_env.items() if k not in example}
        return inherited | {
            "COMPOSE_PROJECT_NAME": self.name,
            "COMPOSE_FILE": os.pathsep.join(str(path) for path in self.files()),
            "ENV_FILE": str(self.env_file),
        }

    def up(self) -> subprocess.CompletedProcess[str]:
        """`make compose-up`, as a user runs it: build, start, wait until all are healthy."""
        result = subprocess.run(
            ["make", "--no-print-directory", "compose-up"],
            env=self.env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=UP_TIMEOUT,
            check=False,
        )
        self.up_output = result.stdout + result.stderr
        if result.returncode != 0:
            raise RuntimeError(f"make compose-up failed:\n{self.up_output[-6000:]}")
        return result

    def compose(
        self, *args: str, check: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        """Run a compose command for this project."""
        result = subprocess.run(
            [*compose_cli(), "--env-file", str(self.env_file), *args],
            env=self.env(),
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
        """The services `up` starts: every one of the compose file but those behind a profile
        (the v1 CLI's `config --services` lists those too)."""
        config = yaml.safe_load(self.compose("config").stdout)
        return [name for name, spec in config["services"].items() if not spec.get("profiles")]

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
