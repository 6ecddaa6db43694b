"""The committed Dockerfiles and docker-compose.yml, built and run in a real Docker engine."""

import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.compose.engine import docker_cli
from tests.compose.project import CORS_ORIGIN, PUBLISHED, ComposeProject
from tests.integration.test_readme import SEED_PORTS, readme_flow

APP_SERVICES = list(PUBLISHED)
PUBLIC = {"api_gateway"}
FAILOVER_DEADLINE = 45.0


def served_by(gateway: httpx.Client) -> str:
    """Who served one GET /itens through the gateway (fails on anything but 200)."""
    response = gateway.get("/itens")
    assert response.status_code == 200, response.text
    return response.headers["x-served-by"]


def until_served_by(gateway: httpx.Client, name: str, streak: int = 1) -> int:
    """Send GET /itens until `name` answers `streak` in a row; how many failed meanwhile."""
    failures = in_a_row = 0
    end = time.monotonic() + FAILOVER_DEADLINE
    while time.monotonic() < end:
        try:
            response = gateway.get("/itens", timeout=15)
        except httpx.HTTPError:
            response = None
        if response is None or response.status_code != 200:
            failures += 1
            in_a_row = 0
        elif response.headers["x-served-by"] == name:
            in_a_row += 1
            if in_a_row == streak:
                return failures
        else:
            in_a_row = 0
        time.sleep(0.1)
    pytest.fail(f"{name} did not serve {streak} in a row ({failures} failures)")


def test_every_container_turns_healthy(project: ComposeProject) -> None:
    assert {s: project.health(s) for s in project.services()} == dict.fromkeys(
        project.services(), "healthy"
    )


def test_services_run_as_a_non_root_user(project: ComposeProject) -> None:
    for service in APP_SERVICES:
        uid = subprocess.run(
            [docker_cli(), "exec", project.container(service), "id", "-u"],
            env=project.engine_env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        assert uid == "10001", service


def test_only_the_gateway_is_published_beyond_loopback(
    project: ComposeProject,
) -> None:
    for service in project.services():
        bindings = project.inspect(service)["HostConfig"]["PortBindings"] or {}  # type: ignore[index]
        hosts = {b["HostIp"] for spec in bindings.values() for b in spec or []}
        if service in PUBLIC:
            assert hosts, service
            assert hosts <= {"", "0.0.0.0"}, service
        elif service in PUBLISHED:
            assert hosts == {"127.0.0.1"}, service
        else:
            assert not bindings, f"{service} must not be published"


def test_postgres_and_redis_sit_only_on_the_internal_network(project: ComposeProject) -> None:
    for service in ("postgres", "redis"):
        networks = project.inspect(service)["NetworkSettings"]["Networks"]  # type: ignore[index]
        assert sorted(networks) == [f"{project.name}_backend"], service
    internal = subprocess.run(
        [docker_cli(), "network", "inspect", "-f", "{{.Internal}}", f"{project.name}_backend"],
        env=project.engine_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert internal == "true"


def test_readme_flow_runs_against_the_published_gateway(project: ComposeProject) -> None:
    script = readme_flow()
    for port, service in SEED_PORTS.items():
        script = script.replace(f"localhost:{port}", f"127.0.0.1:{project.ports[service]}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('"status":"success"') >= 6, result.stdout
    assert '"nome":"Item Teste"' in result.stdout


def test_both_servers_take_turns_behind_the_balancer(gateway: httpx.Client) -> None:
    assert {served_by(gateway) for _ in range(6)} == {"server", "server2"}


def test_balancer_carries_on_when_a_server_container_is_killed(
    project: ComposeProject, gateway: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    project.compose("kill", "server")
    # Carrying on: no request fails (the balancer retries what never reached the dead server
    # on server2), and then 20 in a row are answered by server2.
    failures = until_served_by(gateway, "server2", streak=20)
    item = {"nome": "after kill", "descricao": "compose test", "preco": 1.5}
    created = gateway.post("/itens", json=item)
    assert created.status_code == 201, created.text
    project.compose("start", "server")
    project.wait_healthy(["server"])
    rejoin_failures = until_served_by(gateway, "server")
    assert gateway.get(f"/itens/{created.json()['data']['id']}").status_code == 200
    with capsys.disabled():
        print(
            f"\n  docker kill server: {failures} failed request(s) before the balancer carried"
            f" on; {rejoin_failures} while it rejoined"
        )
    assert (failures, rejoin_failures) == (0, 0)


def test_restart_policy_brings_back_a_crashed_server(
    project: ComposeProject, gateway: httpx.Client
) -> None:
    before = project.inspect("server")
    state = before["State"]
    assert isinstance(state, dict)
    pid = int(state["Pid"])
    assert state["Running"], "server must be running before it can crash"
    assert pid > 0, "os.kill(0) would signal our own process group"
    if os.geteuid() == 0:
        os.kill(pid, signal.SIGKILL)
    else:
        subprocess.run(["sudo", "-n", "kill", "-KILL", str(pid)], check=True, timeout=30)
    deadline = time.monotonic() + FAILOVER_DEADLINE
    while project.inspect("server")["RestartCount"] == before["RestartCount"]:
        assert time.monotonic() < deadline, "docker did not restart the crashed server"
        time.sleep(0.5)
    project.wait_healthy(["server"])
    until_served_by(gateway, "server")


def test_a_setting_put_in_env_reaches_the_container(gateway: httpx.Client) -> None:
    preflight = gateway.options(
        "/itens",
        headers={"Origin": CORS_ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == CORS_ORIGIN
