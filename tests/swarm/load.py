"""The load client (load_client.py) in a container on the stack's network, and what it saw:
requests by the moment they were sent, the balancers' views of their backends by round."""

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.compose.engine import DockerEngine
from tests.swarm.stack import SwarmStack

CLIENT_DIR = Path(__file__).parent
CONTAINER = "arquitetura-swarm-load"
START_TIMEOUT = 150.0
VERIFY_TIMEOUT = 120.0
FOLLOW_TIMEOUT = 180.0


@dataclass
class LoadRun:
    """One run of the load client, writing into `out` (mounted at /out)."""

    engine: DockerEngine
    network: str
    image: str
    out: Path
    admin: tuple[str, str]
    rate: float = 40.0

    def start(self) -> None:
        """Start the client: it watches the balancers at once, and sends no load yet."""
        self.out.mkdir(parents=True, exist_ok=True)
        for name in ("requests.jsonl", "status.jsonl", "go", "started", "stop", "summary.json"):
            (self.out / name).unlink(missing_ok=True)
        self.remove()
        username, password = self.admin
        self.engine.docker(
            "run", "--detach", f"--name={CONTAINER}", f"--network={self.network}",
            f"--volume={CLIENT_DIR}:/load:ro", f"--volume={self.out}:/out",
            f"--env=ADMIN_USERNAME={username}", f"--env=ADMIN_PASSWORD={password}",
            f"--env=RATE={self.rate}", self.image, "python", "/load/load_client.py",
        )  # fmt: skip
        self._wait_for("status.jsonl")

    def go(self) -> None:
        """Start the load, and wait until it flows (the client logs in first)."""
        (self.out / "go").touch()
        self._wait_for("started")

    def _wait_for(self, name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not (self.out / name).exists():
            if time.monotonic() > deadline or not self._running():
                raise RuntimeError(f"the load client wrote no {name}:\n{self.logs()}")
            time.sleep(0.5)

    def stop(self) -> dict[str, Any]:
        """Stop the load; the client then verifies the writes: its summary."""
        (self.out / "stop").touch()
        summary = self.out / "summary.json"
        deadline = time.monotonic() + VERIFY_TIMEOUT
        while not summary.exists():
            if time.monotonic() > deadline or not self._running():
                raise RuntimeError(f"the load client wrote no summary:\n{self.logs()}")
            time.sleep(0.5)
        result: dict[str, Any] = json.loads(summary.read_text())
        return result

    def remove(self) -> None:
        """The container gone, whatever state it is in."""
        self.engine.docker("rm", "--force", CONTAINER, check=False)

    def logs(self) -> str:
        """What the client printed (its errors)."""
        result = self.engine.docker("logs", "--tail=40", CONTAINER, check=False)
        return result.stdout + result.stderr

    def _running(self) -> bool:
        state = self.engine.docker("inspect", "-f", "{{.State.Running}}", CONTAINER, check=False)
        return state.stdout.strip() == "true"

    def requests(self, since: float = 0.0, until: float = float("inf")) -> list[dict[str, Any]]:
        """Every request sent between two moments (time.time()), answered or not."""
        lines = (self.out / "requests.jsonl").read_text().splitlines()
        records = (json.loads(line) for line in lines if line.endswith("}"))
        return [r for r in records if since <= r["t"] < until]

    def rounds(self, since: float) -> list[dict[str, Any]]:
        """The watch's rounds from a moment on: when (t), the servers' addresses in DNS
        (servers), each balancer's backends by its address (views)."""
        lines = (self.out / "status.jsonl").read_text().splitlines()
        records = (json.loads(line) for line in lines if line.endswith("}"))
        return [r for r in records if r["t"] >= since]


def one_per_task(hosts: set[str], tasks: dict[str, set[str]]) -> bool:
    """Whether these addresses are one of each task's, and none other."""
    matched = [task for task, addresses in tasks.items() if len(addresses & hosts) == 1]
    return len(matched) == len(tasks) == len(hosts) and hosts <= set().union(*tasks.values())


def lists_exactly(view: Any, tasks: dict[str, set[str]]) -> bool:
    """Whether a balancer's view holds one backend per task and no other."""
    if not isinstance(view, dict):
        return False  # it did not answer
    return one_per_task({str(urlsplit(url).hostname) for url in view}, tasks)


def tally(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A stretch of load in numbers: sent, failed, resent by the client, writes taken."""
    failed = [r for r in records if not r["ok"]]
    return {
        "requests": len(records),
        "failed": len(failed),
        "client_resends": sum(1 for r in records if r["retried"]),
        "writes_acknowledged": sum(1 for r in records if r["m"] == "POST" and r["ok"]),
        "first_failures": failed[:5],
    }


def followed(rounds: list[dict[str, Any]], tasks: dict[str, set[str]]) -> tuple[float, float]:
    """(since when DNS has held exactly these tasks, when every balancer listed them too)."""
    in_dns = None
    for seen in rounds:
        dns = seen["servers"]
        if not (isinstance(dns, list) and one_per_task(set(dns), tasks)):
            in_dns = None  # not yet, or no longer
        elif in_dns is None:
            in_dns = seen["t"]
        views = list(seen["views"].values())
        if in_dns is not None and views and all(lists_exactly(v, tasks) for v in views):
            return in_dns, seen["t"]
    raise LookupError("not yet")


def wait_followed(stack: SwarmStack, load: LoadRun, started: float) -> dict[str, float]:
    """Wait until the servers run as many tasks as asked, the servers' name resolves to
    exactly those, and every balancer lists exactly those: seconds from `started` until the
    swarm got there and until DNS did, then from the later of the two until the balancers."""
    converged_at: float | None = None
    tasks: dict[str, set[str]] = {}
    deadline = time.monotonic() + FOLLOW_TIMEOUT
    while time.monotonic() < deadline:
        now = time.time()
        running = stack.running("server") if stack.converged("server") else None
        if running is None:
            converged_at = None
        elif converged_at is None or set(running) != set(tasks):
            converged_at, tasks = now, running
        if converged_at is not None:
            try:
                in_dns, listed = followed(load.rounds(since=started), tasks)
            except LookupError:
                pass
            else:
                # Listed before the test saw the swarm converge (it polls): no wait at all.
                waited = max(0.0, listed - max(converged_at, in_dns))
                return {
                    "swarm_converged_s": round(converged_at - started, 2),
                    "dns_s": round(in_dns - started, 2),
                    "balancers_followed_s": round(waited, 2),
                }
        time.sleep(0.25)
    last = load.rounds(since=time.time() - 1)
    raise AssertionError(f"balancers never listed exactly {tasks}: last rounds {last}")
