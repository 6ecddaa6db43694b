"""`make up` as a user runs it (on free ports), and the seed's scripts against it."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.stack import SCRUBBED, free_port

ROOT = Path(__file__).resolve().parents[2]
PORT_VARS = {
    "GATEWAY_PORT": "api_gateway",
    "BALANCER_PORT": "load_balancer",
    "SERVER_PORT": "server",
    "SERVER2_PORT": "server2",
    "CACHE_PORT": "cache",
    "MONITOR_PORT": "monitoring",
}
READY_TIMEOUT = 240.0


@dataclass
class MadeUp:
    """A running `make up` and where to find it."""

    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    run_dir: Path
    log: Path

    def url(self, service: str) -> str:
        """Base URL of a service."""
        return f"http://127.0.0.1:{self.ports[service]}"

    def output(self) -> str:
        """Everything `make up` printed so far."""
        return self.log.read_text(errors="replace")

    def script_env(self) -> dict[str, str]:
        """What a user points the seed's scripts at."""
        return os.environ | {
            "GATEWAY_URL": self.url("api_gateway"),
            "BALANCER_URL": self.url("load_balancer"),
            "SERVER_URL": self.url("server"),
            "SERVER2_URL": self.url("server2"),
            "CACHE_URL": self.url("cache"),
            "MONITOR_URL": self.url("monitoring"),
            "RUN_DIR": str(self.run_dir),
        }


@pytest.fixture(scope="module")
def made_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MadeUp]:
    """`make up` in the repository, with its ports and data moved somewhere private."""
    tmp = tmp_path_factory.mktemp("make-up")
    ports = {var: free_port() for var in PORT_VARS}
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith("MAKE")}
    env |= {var: str(port) for var, port in ports.items()}
    env |= {"RUN_DIR": str(tmp / "run"), "DATABASE_URL": f"sqlite:///{tmp}/app.db"}
    log = tmp / "make-up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "up"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = MadeUp(proc, {PORT_VARS[v]: p for v, p in ports.items()}, tmp / "run", log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while "stop:   Ctrl-C" not in running.output():
            assert proc.poll() is None, running.output()[-3000:]
            assert time.monotonic() < deadline, running.output()[-3000:]
            time.sleep(0.5)
        yield running
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _supervisor_pid(made_up: MadeUp, program: str) -> int:
    out = subprocess.run(
        [
            str(ROOT / ".venv/bin/supervisorctl"),
            "-s",
            f"unix://{made_up.run_dir}/supervisor.sock",
            "pid",
            program,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def test_make_up_prints_every_service_up_with_its_url(made_up: MadeUp) -> None:
    table = made_up.output().split("stop:   Ctrl-C")[0]
    for service, port in made_up.ports.items():
        assert f"http://localhost:{port}" in table
        line = next(row for row in table.splitlines() if row.strip().startswith(service + " "))
        assert " up " in line, line
    assert "admin/admin123" in table


def test_quick_test_script_passes(made_up: MadeUp) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "quick_test.sh")],
        env=made_up.script_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout


def test_architecture_script_passes_including_failover(made_up: MadeUp) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "test_architecture.sh")],
        env=made_up.script_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "architecture OK" in result.stdout


CLIENT_FLAGS = {
    "api_gateway": "--base-url",
    "load_balancer": "--balancer-url",
    "server": "--server-url",
    "server2": "--server2-url",
    "cache": "--cache-url",
    "monitoring": "--monitor-url",
}


def _run_client(made_up: MadeUp, **urls: str) -> subprocess.CompletedProcess[str]:
    """test_endpoints.py pointed at `make up`, or at the URLs given per service."""
    args = [
        arg
        for service, flag in CLIENT_FLAGS.items()
        for arg in (flag, urls.get(service, made_up.url(service)))
    ]
    return subprocess.run(
        [sys.executable, str(ROOT / "test_endpoints.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_endpoints_client_walks_the_whole_flow(made_up: MadeUp) -> None:
    result = _run_client(made_up)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\u2717" not in result.stdout
    assert result.stdout.rstrip().endswith("34 passed, 0 failed"), result.stdout


def test_endpoints_client_fails_when_a_service_is_unreachable(made_up: MadeUp) -> None:
    result = _run_client(made_up, cache=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "\u2717 cache /saude" in result.stdout


def test_a_killed_service_is_restarted_and_logged(made_up: MadeUp) -> None:
    old = _supervisor_pid(made_up, "cache")
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            healthy = httpx.get(f"{made_up.url('cache')}/saude", timeout=2).status_code == 200
            if healthy and _supervisor_pid(made_up, "cache") not in (0, old):
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        pytest.fail("cache was not restarted")
    assert "exited: cache (terminated by SIGKILL; not expected)" in made_up.output()


def test_ctrl_c_stops_every_service(made_up: MadeUp) -> None:
    os.killpg(made_up.proc.pid, signal.SIGINT)
    made_up.proc.wait(timeout=60)
    for service in made_up.ports:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{made_up.url(service)}/saude", timeout=2)
    assert "stopped: api_gateway" in made_up.output()
