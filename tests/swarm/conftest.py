"""deploy/swarm/stack.yml on a swarm of one node: the compose test's private Docker engine
(tests/compose/engine.py) and stand-in base images (tests/compose/standins.py), on a data root
of its own, with the images docker-compose.yml builds."""

import json
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.compose.engine import DockerEngine
from tests.compose.standins import build_standins
from tests.swarm.load import LoadRun, wait_followed
from tests.swarm.stack import REPO, STACK_FILE, SwarmStack

HOME_CACHE = Path.home() / ".cache" / "arquitetura"
# Never the compose test's data root: two engines on one root break each other, and its
# pidfile would have one test stop the other's engine. Only the debootstrap rootfs tarball,
# which no engine holds open, is shared with it.
CACHE = Path(os.environ.get("SWARM_TEST_CACHE", HOME_CACHE / "swarm-test"))
ROOTFS_CACHE = Path(os.environ.get("COMPOSE_TEST_CACHE", HOME_CACHE / "compose-test"))
OUTPUT = REPO / "test-output" / "swarm"
STACK = "arquitetura"
BUILD_TIMEOUT = 1200
# What the scenarios measured, written to OUTPUT/figures.json and printed after the run.
FIGURES: dict[str, Any] = {}


def images_to_build() -> dict[str, str]:
    """image -> Dockerfile, for each docker-compose.yml build whose image stack.yml runs."""
    # stack.yml's ${IMAGE_PREFIX:-arquitetura} and ${IMAGE_TAG:-latest}, at their defaults.
    defaults = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", STACK_FILE.read_text())
    wanted = {s["image"] for s in yaml.safe_load(defaults)["services"].values()}
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    found = {
        spec["image"]: spec["build"]["dockerfile"]
        for spec in compose.values()
        if "build" in spec and spec["image"] in wanted
    }
    assert len(found) == 5, f"stack.yml runs images docker-compose.yml does not build: {found}"
    return found


def build_images(engine: DockerEngine) -> None:
    """The images docker-compose.yml builds, side by side, from the committed Dockerfiles
    (with the host's network, as the compose test builds them: our engine has no route)."""

    def build(image: str, dockerfile: str) -> None:
        engine.docker(
            "build", "--network=host", f"--file={REPO / dockerfile}", f"--tag={image}",
            str(REPO), timeout=BUILD_TIMEOUT,
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=5) as pool:
        for done in [pool.submit(build, *item) for item in images_to_build().items()]:
            done.result()


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    """Our dockerd as the manager of a swarm of one, the base and service images built;
    the swarm left and the engine stopped afterwards, whatever happened."""
    if os.geteuid() != 0:
        pytest.fail("make swarm-test starts its own dockerd and needs root")
    engine = DockerEngine(CACHE)
    engine.start()
    try:
        # A run that was killed left its swarm (and stack) in the data root: start afresh.
        engine.docker("swarm", "leave", "--force", check=False)
        engine.docker("swarm", "init", "--advertise-addr", "127.0.0.1")
        build_standins(engine, ROOTFS_CACHE)
        build_images(engine)
        yield engine
    finally:
        engine.docker("swarm", "leave", "--force", check=False)
        engine.stop()


@pytest.fixture(scope="session")
def stack(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmStack]:
    """Secrets created, the stack deployed and every service at its replicas, running and
    healthy; its services' logs kept and the stack removed afterwards."""
    stack = SwarmStack(engine, STACK, tmp_path_factory.mktemp("swarm"))
    stack.remove()
    try:
        stack.create_secrets()
        stack.deploy()
        stack.wait_converged(list(yaml.safe_load(STACK_FILE.read_text())["services"]))
        yield stack
    finally:
        try:
            stack.save_logs(OUTPUT)
        finally:
            stack.remove()


@pytest.fixture(scope="session")
def load(stack: SwarmStack) -> Iterator[LoadRun]:
    """The load client on the stack's `edge` network, sending load as its first admin once
    every balancer has found the servers (a balancer that starts before any server is up
    finds them at its next look-up)."""
    run = LoadRun(
        engine=stack.engine,
        network=f"{STACK}_edge",
        image="python:3.11-slim",
        out=OUTPUT / "load",
        admin=stack.admin,
    )
    run.start()
    try:
        wait_followed(stack, run, time.time())
        run.go()
        yield run
    finally:
        (OUTPUT / "load-client.log").write_text(run.logs())
        run.remove()


@pytest.fixture(scope="session")
def figures() -> Iterator[dict[str, Any]]:
    """Where scenarios put their figures; written to test-output/swarm/figures.json."""
    yield FIGURES
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "figures.json").write_text(json.dumps(FIGURES, indent=2) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures, for the note: requests, failures, lost writes, follow times."""
    if not FIGURES:
        return
    terminalreporter.section("swarm figures (test-output/swarm/figures.json)")
    for name, numbers in FIGURES.items():
        shown = {k: v for k, v in numbers.items() if k != "first_failures"}
        terminalreporter.write_line(f"{name}: {json.dumps(shown)}")
