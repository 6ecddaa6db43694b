"""The compose stack, built from the committed files and running on a Docker engine.

By default the engine is our own dockerd with local stand-in base images (no registry is
reachable here). COMPOSE_TEST_ENGINE=system uses the machine's running engine and real base
images instead (GitHub Actions).
"""

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.compose.engine import DockerEngine
from tests.compose.project import REPO, ComposeProject, login
from tests.compose.standins import build_standins

# Outside the clone, like uv's and pip's caches: the rootfs and image layers of one run make
# the next run on the same machine (a fresh clone included) minutes faster.
CACHE = Path(
    os.environ.get("COMPOSE_TEST_CACHE", Path.home() / ".cache" / "arquitetura" / "compose-test")
)
OUTPUT = REPO / "test-output" / "compose"
BUILD_TIMEOUT = 1800


@pytest.fixture(scope="session")
def engine_env() -> Iterator[tuple[dict[str, str], bool]]:
    """(environment for docker clients, whether it is our isolated engine) of a running one."""
    if os.environ.get("COMPOSE_TEST_ENGINE") == "system":
        yield dict(os.environ), False
        return
    if os.geteuid() != 0:
        pytest.fail("make compose-test starts its own dockerd and needs root")
    engine = DockerEngine(CACHE)
    engine.start()
    try:
        build_standins(engine, CACHE)
        yield engine.env(), True
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def project(
    engine_env: tuple[dict[str, str], bool], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeProject]:
    """The env file made by compose-up's script (then a user's edits), `make compose-up`;
    `down -v` afterwards, whatever happened."""
    env, isolated = engine_env
    project = ComposeProject(
        name="arquitetura-compose-test",
        workdir=tmp_path_factory.mktemp("compose"),
        engine_env=env,
        isolated_engine=isolated,
    )
    project.create_env_file()
    # A run that was killed may have left its containers behind (restarted with the engine).
    project.compose("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
    try:
        # All five images at once (compose-up's `up --build` builds one after the other); its
        # build then finds every layer cached.
        project.compose("build", "--parallel", timeout=BUILD_TIMEOUT)
        project.up()
        # compose-up waits (v2: --wait; v1: the script): nothing is left to wait for.
        states = {service: project.health(service) for service in project.services()}
        assert set(states.values()) == {"healthy"}, f"compose-up returned early: {states}"
        yield project
    finally:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        (OUTPUT / "compose-up.log").write_text(project.setup_output + project.up_output)
        logs = project.compose("logs", "--no-color", check=False)
        (OUTPUT / "compose.log").write_text(logs.stdout + logs.stderr)
        project.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)


@pytest.fixture(scope="session")
def gateway(project: ComposeProject) -> Iterator[httpx.Client]:
    """A client of the published gateway, logged in as the first admin of the env file."""
    with httpx.Client(base_url=project.url("api_gateway"), timeout=30) as client:
        values = project.values
        login(client, values["FIRST_ADMIN_USERNAME"], values["FIRST_ADMIN_PASSWORD"])
        yield client
