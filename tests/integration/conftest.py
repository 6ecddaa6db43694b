"""The running stacks: one on the embedded defaults, one on PostgreSQL and Redis."""

import asyncio
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import asyncpg
import httpx
import pytest
import redis

from tests.integration.databases import create_database, drop_database
from tests.integration.stack import Stack

REDIS_BASE_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything in this folder starts real processes."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def missing(what: str) -> NoReturn:
    """Skip a test whose program is not installed; under CI=true, fail it instead."""
    message = f"{what} is not installed (make system-deps)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_installed(program: str) -> None:
    """missing(program) unless it is on PATH."""
    if shutil.which(program) is None:
        missing(program)


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} unreachable: {error}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing dependency is a failure)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throwaway database, dropped afterwards."""
    try:
        url = asyncio.run(create_database("test"))
    except (OSError, asyncpg.PostgresError) as exc:
        _unavailable("PostgreSQL", exc)
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database number of its own, flushed before and after."""
    url = f"{REDIS_BASE_URL}/{random.randint(1, 15)}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session", params=["embedded", "postgres-redis"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """All six services running; once on SQLite + in-process stores, once on PostgreSQL + Redis."""
    workdir = OUTPUT / f"stack-{request.param}"
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*.log"):
        old.unlink()
    if request.param == "embedded":
        data = tmp_path_factory.mktemp("embedded")
        running = Stack(request.param, workdir, f"sqlite:///{data}/app.db", None)
    else:
        running = Stack(
            request.param,
            workdir,
            request.getfixturevalue("postgres_database"),
            request.getfixturevalue("redis_url"),
        )
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()


def login(stack: Stack, username: str, password: str) -> str:
    """A fresh access token from the gateway's /login."""
    response = httpx.post(
        f"{stack.url('api_gateway')}/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["access_token"])


@pytest.fixture(scope="session")
def admin_token(stack: Stack) -> str:
    """admin/admin123, one of the two default accounts."""
    return login(stack, "admin", "admin123")


@pytest.fixture(scope="session")
def user_token(stack: Stack) -> str:
    """user/user123, the other default account."""
    return login(stack, "user", "user123")


@pytest.fixture
def gateway(stack: Stack, admin_token: str) -> Iterator[httpx.Client]:
    """A client of the public entry, logged in as admin."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=stack.url("api_gateway"), headers=headers, timeout=10) as client:
        yield client
