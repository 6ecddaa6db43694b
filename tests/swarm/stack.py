"""deploy/swarm/stack.yml deployed on a Docker engine in swarm mode, and what the swarm says
of its tasks (the engine's API over its unix socket: one request where the CLI needs two)."""

import http.client
import json
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from tests.compose.engine import DockerEngine

REPO = Path(__file__).resolve().parents[2]
STACK_FILE = REPO / "deploy" / "swarm" / "stack.yml"
CONVERGE_TIMEOUT = 300.0
# The secrets stack.yml names (external: created before the deploy, as docs/deployment.md says).
SECRETS = ("secret_key", "metrics_token", "first_admin_password", "postgres_password")


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over the engine's unix socket."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def for_this_engine(stack: dict[str, Any]) -> dict[str, Any]:
    """stack.yml with what an engine without iptables (ours) needs, and nothing else.

    Without iptables there is no virtual IP and no routing mesh: the gateway is found by DNS
    like every other service, and reached by a client container on the `edge` network rather
    than on a published port. The stand-in postgres image follows the official image's
    contract but for POSTGRES_PASSWORD_FILE: a shell reads the secret file for it.
    """
    services = stack["services"]
    gateway = services["api_gateway"]
    gateway.pop("ports")
    gateway["deploy"]["endpoint_mode"] = "dnsrr"
    services["postgres"]["entrypoint"] = [
        "sh",
        "-c",
        'export POSTGRES_PASSWORD="$$(cat "$$POSTGRES_PASSWORD_FILE")"; '
        'exec docker-entrypoint.sh "$$@"',
        "postgres-with-password-file",
    ]
    services["postgres"]["command"] = ["postgres"]
    return stack


@dataclass
class SwarmStack:
    """One stack on one engine: its secrets, its deploy, its services' tasks."""

    engine: DockerEngine
    name: str
    workdir: Path
    standins: bool = True
    values: dict[str, str] = field(default_factory=dict)
    deploy_output: str = ""

    def service(self, name: str) -> str:
        """The swarm's name of one of stack.yml's services."""
        return f"{self.name}_{name}"

    @property
    def admin(self) -> tuple[str, str]:
        """The first admin's username (stack.yml's default) and password (its secret)."""
        return "admin", self.values["first_admin_password"]

    def create_secrets(self) -> None:
        """Fresh secrets, as the docs tell an operator to make them (`docker secret create`)."""
        self.values = {
            "secret_key": secrets.token_hex(32),
            "metrics_token": secrets.token_hex(32),
            "first_admin_password": secrets.token_urlsafe(18),
            "postgres_password": secrets.token_hex(16),
        }
        self.values["database_url"] = (
            f"postgresql://app:{self.values['postgres_password']}@postgres:5432/arquitetura"
        )
        for name, value in self.values.items():
            path = self.workdir / name
            path.write_text(value + "\n")
            path.chmod(0o600)
            self.engine.docker("secret", "create", f"arquitetura_{name}", str(path))
            path.unlink()

    def deploy(self) -> None:
        """`docker stack deploy` of stack.yml (as this engine needs it, see for_this_engine)."""
        stack = yaml.safe_load(STACK_FILE.read_text())
        if self.standins:
            stack = for_this_engine(stack)
        path = self.workdir / "stack.yml"
        path.write_text(yaml.safe_dump(stack, sort_keys=False))
        result = self.engine.docker("stack", "deploy", "--prune", "-c", str(path), self.name)
        self.deploy_output = result.stdout + result.stderr

    def remove(self) -> None:
        """The stack, its secrets and its volume gone (whatever is left of them)."""
        self.engine.docker("stack", "rm", self.name, check=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self._containers():
            time.sleep(1)
        for name in (*SECRETS, "database_url"):
            self.engine.docker("secret", "rm", f"arquitetura_{name}", check=False)
        # Its networks go a moment after its containers.
        for _ in range(10):
            volume = f"{self.name}_postgres-data"
            if self.engine.docker("volume", "rm", volume, check=False).returncode == 0:
                break
            time.sleep(1)

    def api(self, path: str) -> Any:
        """GET one path of the engine's API, decoded."""
        connection = _UnixConnection(str(self.engine.socket))
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:500]!r}")
        return json.loads(body)

    def tasks(self, service: str) -> list[dict[str, Any]]:
        """The swarm's tasks of one of stack.yml's services, every state."""
        filters = quote(json.dumps({"service": [self.service(service)]}))
        tasks: list[dict[str, Any]] = self.api(f"/tasks?filters={filters}")
        return tasks

    def running(self, service: str) -> dict[str, set[str]]:
        """Running tasks that are meant to keep running: task id -> its addresses."""
        return {
            task["ID"]: {
                address.partition("/")[0]
                for attachment in task.get("NetworksAttachments", [])
                for address in attachment.get("Addresses", [])
            }
            for task in self.tasks(service)
            if task["DesiredState"] == "running" and task["Status"]["State"] == "running"
        }

    def replicas(self, service: str) -> int:
        """How many tasks the service is set to run."""
        spec = self.api(f"/services/{self.service(service)}")["Spec"]
        return int(spec["Mode"]["Replicated"]["Replicas"])

    def converged(self, service: str) -> bool:
        """As many running tasks as replicas, and no other task still meant to run."""
        tasks = self.tasks(service)
        wanted = [t for t in tasks if t["DesiredState"] == "running"]
        running = [t for t in wanted if t["Status"]["State"] == "running"]
        return len(running) == len(wanted) == self.replicas(service)

    def wait_converged(self, services: list[str], timeout: float = CONVERGE_TIMEOUT) -> None:
        """Block until every named service runs its replicas (running means healthy: swarm
        reports a task with a health check running once it passes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.converged(s) for s in services):
                return
            time.sleep(1)
        states = {
            s: sorted(t["Status"]["State"] + ":" + t["DesiredState"] for t in self.tasks(s))
            for s in services
        }
        raise RuntimeError(f"not converged after {timeout:.0f}s: {states}")

    def container(self, task_id: str) -> str:
        """The container of a task."""
        task = self.api(f"/tasks/{task_id}")
        return str(task["Status"]["ContainerStatus"]["ContainerID"])

    def save_logs(self, directory: Path) -> None:
        """Each service's containers' logs (the replaced ones' too) in <service>.log.

        Not `docker service logs`: with tasks gone it may never return."""
        directory.mkdir(parents=True, exist_ok=True)
        logs: dict[str, list[str]] = {}
        for container in self._containers():
            labels = self.api(f"/containers/{container}/json")["Config"]["Labels"]
            service = labels["com.docker.swarm.service.name"].removeprefix(f"{self.name}_")
            result = self.engine.docker("logs", "--timestamps", container, check=False)
            task = labels["com.docker.swarm.task.name"]
            logs.setdefault(service, []).append(f"== {task}\n{result.stdout}{result.stderr}")
        for service, parts in logs.items():
            (directory / f"{service}.log").write_text("\n".join(parts))

    def _containers(self) -> list[str]:
        label = quote(json.dumps({"label": [f"com.docker.stack.namespace={self.name}"]}))
        return [c["Id"] for c in self.api(f"/containers/json?all=1&filters={label}")]
