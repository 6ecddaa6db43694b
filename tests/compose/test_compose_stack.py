"""The committed Dockerfiles and docker-compose.yml, built and run in a real Docker engine."""

import os
import secrets
import signal
import socket
import subprocess
import time

import httpx
import pytest

from tests.compose.engine import docker_cli
from tests.compose.project import CORS_ORIGIN, PUBLISHED, ComposeProject, login, set_env
from tests.integration.test_readme import SEED_PORTS, readme_flow

APP_SERVICES = list(PUBLISHED)
PUBLIC = {"api_gateway"}
FAILOVER_DEADLINE = 45.0
SCRAPE_DEADLINE = 30.0


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


def test_compose_up_printed_the_admin_password_once(project: ComposeProject) -> None:
    values = project.values
    password = values["FIRST_ADMIN_PASSWORD"]
    assert project.setup_output.count(password) == 1, project.setup_output
    assert f"username: {values['FIRST_ADMIN_USERNAME']}" in project.setup_output
    assert str(project.env_file) in project.setup_output  # where to find it again
    # The next run finds the env file complete: it neither prints nor changes a secret.
    assert password not in project.up_output, project.up_output


def test_the_published_demo_accounts_do_not_exist(project: ComposeProject) -> None:
    with httpx.Client(base_url=project.url("api_gateway"), timeout=30) as client:
        for username, password in (("admin", "admin123"), ("user", "user123")):
            response = client.post("/login", json={"username": username, "password": password})
            assert response.status_code == 401, (username, response.text)


def test_the_first_admin_comes_from_the_env_file(
    project: ComposeProject, gateway: httpx.Client
) -> None:
    me = gateway.get("/me")
    assert me.status_code == 200, me.text
    assert me.json()["data"] == {
        "username": project.values["FIRST_ADMIN_USERNAME"],
        "role": "admin",
    }


def test_metrics_answer_only_with_the_token(project: ComposeProject) -> None:
    token = project.values["METRICS_TOKEN"]
    for service in APP_SERVICES:
        url = f"{project.url(service)}/metrics"
        assert httpx.get(url, timeout=30).status_code in {401, 403, 404}, service
        wrong = httpx.get(url, headers={"Authorization": "Bearer not-the-token"}, timeout=30)
        assert wrong.status_code in {401, 403, 404}, service
        right = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert right.status_code == 200, (service, right.text[:200])
        assert "# TYPE" in right.text, service


def test_the_monitor_scrapes_every_service_with_the_token(project: ComposeProject) -> None:
    errors: dict[str, object] = {}
    deadline = time.monotonic() + SCRAPE_DEADLINE
    while time.monotonic() < deadline:
        stats = httpx.get(f"{project.url('monitoring')}/stats", timeout=30)
        assert stats.status_code == 200, stats.text
        errors = {s["name"]: s["scrape_error"] for s in stats.json()["data"]["services"]}
        if set(errors) == set(APP_SERVICES) and not any(errors.values()):
            return
        time.sleep(1)
    pytest.fail(f"scrape errors after {SCRAPE_DEADLINE:.0f}s: {errors}")


def test_app_services_may_keep_max_connections_open(project: ComposeProject) -> None:
    # 65536 (docker-compose.yml), unless our own engine cannot give that much (project.nofile).
    nofile = project.nofile
    for service in APP_SERVICES:
        ulimits = project.inspect(service)["HostConfig"]["Ulimits"]  # type: ignore[index]
        assert {"Name": "nofile", "Soft": nofile, "Hard": nofile} in ulimits, service
        limits = subprocess.run(
            [docker_cli(), "exec", project.container(service), "cat", "/proc/1/limits"],
            env=project.engine_env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert line.split()[3:5] == [str(nofile), str(nofile)], (service, line)


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
    # And as another machine sees it: through this machine's own non-loopback address.
    address = outward_address()
    if address is None:
        return
    for service, port in project.ports.items():
        with socket.socket() as probe:
            probe.settimeout(5)
            reached = probe.connect_ex((address, port)) == 0
        assert reached == (service in PUBLIC), f"{service} on {address}:{port}"


def outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent); None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = udp.getsockname()[0]
    return None if address.startswith("127.") else address


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
    # Containers have no demo accounts: the first admin of the env file logs in instead.
    seed_login = '"username": "admin", "password": "admin123"'
    assert seed_login in script
    values = project.values
    script = script.replace(
        seed_login,
        f'"username": "{values["FIRST_ADMIN_USERNAME"]}",'
        f' "password": "{values["FIRST_ADMIN_PASSWORD"]}"',
    )
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


def test_a_rate_limit_put_in_env_applies_per_user(project: ComposeProject) -> None:
    """RATE_LIMIT=3/minute appended to .env and `make compose-up` run again (compose recreates
    the gateway, whose environment changed): a user's fourth call in a minute gets 429.

    The line goes again afterwards (and compose-up once more): the other tests call /itens
    dozens of times a minute as one user, and /login and /register count per client address.
    """
    set_env(project.env_file, "RATE_LIMIT", "3/minute")
    try:
        project.up()
        # Limits count per user, and /register and /login per address: a user of its own.
        username, password = f"limited-{secrets.token_hex(4)}", secrets.token_urlsafe(12)
        with httpx.Client(base_url=project.url("api_gateway"), timeout=30) as client:
            credentials = {"username": username, "password": password}
            assert client.post("/register", json=credentials).status_code == 201
            login(client, username, password)
            # Windows follow the clock: four calls must not straddle a minute.
            if time.time() % 60 > 55:
                time.sleep(61 - time.time() % 60)
            answers = [client.get("/itens") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429], answers[-1].text
        assert int(answers[-1].headers["Retry-After"]) <= 60
        assert answers[0].headers["X-RateLimit-Limit"] == "3"
    finally:
        set_env(project.env_file, "RATE_LIMIT", None)
        project.up()
