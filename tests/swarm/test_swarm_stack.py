"""deploy/swarm/stack.yml scaled, rolled and hit by a killed task under a steady load of reads
and writes through the gateway: no request fails, no acknowledged write is lost.

The tests run in file order on one stack and one load run: each scenario takes the figures of
the requests sent while it lasted (test-output/swarm/figures.json).
"""

import time
from typing import Any

import yaml

from tests.swarm.load import LoadRun, tally, wait_followed
from tests.swarm.stack import STACK_FILE, SwarmStack

SERVICES = yaml.safe_load(STACK_FILE.read_text())["services"]
RESOLVE_INTERVAL = float(SERVICES["load_balancer"]["environment"]["RESOLVE_INTERVAL"])
# Beyond RESOLVE_INTERVAL, from when DNS (and swarm) had the tasks: a look-up of its own, and
# the watch, a round every 0.25 s plus the time its requests take on a busy machine.
FOLLOW_SLACK = 1.5
SETTLE = 2.0  # load kept flowing after a scenario before its figures are taken
DEADLINE = 180.0  # for swarm to replace a killed task


def phase(load: LoadRun, started: float, **measured: Any) -> dict[str, Any]:
    """The scenario's figures: what it measured, and the requests sent while it lasted."""
    time.sleep(SETTLE)
    return measured | tally(load.requests(since=started, until=time.time()))


def assert_no_failure(numbers: dict[str, Any]) -> None:
    """No request of the stretch failed (the first failures are shown when some did)."""
    assert numbers["requests"] > 0, "no load flowed"
    assert numbers["failed"] == 0, numbers["first_failures"]


def test_every_service_runs_its_replicas_healthy(stack: SwarmStack) -> None:
    for service, spec in SERVICES.items():
        assert stack.converged(service), service
        assert len(stack.running(service)) == spec["deploy"].get("replicas", 1), service


def test_swarm_takes_every_option_of_the_stack_file(stack: SwarmStack) -> None:
    # `docker stack deploy` drops what swarm cannot do with no more than a warning.
    assert "Ignoring" not in stack.deploy_output, stack.deploy_output


def test_the_services_run_read_only_without_capabilities(stack: SwarmStack) -> None:
    for service in ("api_gateway", "load_balancer", "server", "cache", "monitoring"):
        task = next(iter(stack.running(service)))
        host = stack.api(f"/containers/{stack.container(task)}/json")["HostConfig"]
        assert (host["ReadonlyRootfs"], host["CapDrop"]) == (True, ["ALL"]), service


def test_secrets_reach_the_services_as_files_only(stack: SwarmStack) -> None:
    container = stack.container(next(iter(stack.running("server"))))
    listing = stack.engine.docker("exec", container, "ls", "-ln", "/run/secrets").stdout
    for name in ("SECRET_KEY", "DATABASE_URL", "METRICS_TOKEN"):
        line = next(row for row in listing.splitlines() if row.endswith(f" {name}"))
        assert line.split()[:4] == ["-r--------", "1", "10001", "10001"], line
    environment = stack.engine.docker("exec", container, "env").stdout
    assert stack.values["secret_key"] not in environment
    assert "SECRET_KEY" not in environment


def test_scaling_servers_3_to_5_to_2_fails_no_request_and_the_balancers_follow(
    stack: SwarmStack, load: LoadRun, figures: dict[str, Any]
) -> None:
    for replicas in (5, 2):
        started = time.time()
        stack.engine.docker("service", "scale", "--detach", f"{stack.service('server')}={replicas}")
        followed = wait_followed(stack, load, started)
        numbers = figures[f"scale servers to {replicas}"] = phase(load, started, **followed)
        assert followed["balancers_followed_s"] <= RESOLVE_INTERVAL + FOLLOW_SLACK, followed
        assert_no_failure(numbers)
        assert len(stack.running("server")) == replicas


def test_a_rolling_update_of_each_tier_fails_no_request(
    stack: SwarmStack, load: LoadRun, figures: dict[str, Any]
) -> None:
    for service in ("server", "load_balancer", "api_gateway"):
        before = set(stack.running(service))
        started = time.time()
        stack.engine.docker(
            "service", "update", "--force", "--detach=false", stack.service(service), timeout=300
        )
        stack.wait_converged([service])
        measured: dict[str, Any] = {"rollout_s": round(time.time() - started, 2)}
        if service == "server":
            measured |= wait_followed(stack, load, started)
        numbers = figures[f"rolling update of {service}"] = phase(load, started, **measured)
        assert not before & set(stack.running(service)), "every task was replaced"
        assert_no_failure(numbers)


def test_a_killed_server_task_is_replaced_and_fails_no_request(
    stack: SwarmStack, load: LoadRun, figures: dict[str, Any]
) -> None:
    victim = next(iter(stack.running("server")))
    started = time.time()
    stack.engine.docker("kill", stack.container(victim))
    # Swarm notices the exit, starts a new task, and the balancers take it once it runs.
    deadline = time.monotonic() + DEADLINE
    while victim in stack.running("server") or not stack.converged("server"):
        assert time.monotonic() < deadline, "swarm did not replace the killed task"
        time.sleep(0.25)
    followed = wait_followed(stack, load, started)
    numbers = figures["kill a server task"] = phase(load, started, **followed)
    assert victim not in stack.running("server")
    assert followed["balancers_followed_s"] <= RESOLVE_INTERVAL + FOLLOW_SLACK, followed
    assert_no_failure(numbers)


def test_every_acknowledged_write_is_stored_once(load: LoadRun, figures: dict[str, Any]) -> None:
    summary = load.stop()
    whole_run = figures["whole run"] = tally(load.requests()) | {
        "writes_lost": summary["writes_lost"],
        "stored_twice": summary["stored_twice"],
        "stored_unacknowledged": summary["stored_unacknowledged"],
    }
    assert whole_run["writes_acknowledged"] == summary["acknowledged_writes"] > 0
    assert summary["writes_lost"] == 0, summary["lost_ids"]
    assert summary["stored_twice"] == 0
    assert_no_failure(whole_run)
