"""The seed's sync-style DATABASE_URL gets an async driver; a lost database is a 503."""

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import exc
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.pool import QueuePool
from svc_common.database import create_engine, install_database_error_handler
from svc_common.database_url import async_url
from svc_common.envelope import install_error_handlers
from svc_common.settings import DatabaseSettings


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("postgresql://sued@localhost:5432/arquitetura", "postgresql+asyncpg"),
        ("postgres://u:p@db/x", "postgresql+asyncpg"),
        ("postgresql+psycopg2://u@db/x", "postgresql+asyncpg"),
        ("sqlite:///./data/app.db", "sqlite+aiosqlite"),
        ("postgresql+asyncpg://u@db/x", "postgresql+asyncpg"),
    ],
)
def test_async_driver_is_chosen_from_the_url(raw: str, driver: str) -> None:
    assert async_url(raw).drivername == driver


def test_postgres_engines_are_pooled_and_ping_connections_before_use() -> None:
    settings = DatabaseSettings(
        service_name="server",
        porta=8002,
        database_url="postgresql://u@db/x",
        db_pool_size=7,
        db_max_overflow=3,
        db_pool_timeout=2.5,
        _env_file=None,  # type: ignore[call-arg]
    )
    pool = create_engine(settings).sync_engine.pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool._max_overflow, pool._timeout) == (7, 3, 2.5)
    assert pool._pre_ping, "a connection the database dropped is replaced, not handed out"


def _asyncpg_failure(error: Exception) -> exc.DBAPIError:
    """What SQLAlchemy raises when asyncpg raises `error` (the dialect's own translation)."""
    dbapi = AsyncAdapt_asyncpg_dbapi(asyncpg)
    orig = dbapi.Error(str(error), error)
    return exc.DBAPIError.instance("SELECT 1", None, orig, dbapi.Error)  # type: ignore[arg-type]


def _answer(error: Exception) -> tuple[int, dict[str, object], str | None]:
    app = FastAPI()
    install_error_handlers(app)
    install_database_error_handler(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    return response.status_code, response.json(), response.headers.get("retry-after")


@pytest.mark.parametrize(
    "error",
    [
        # PostgreSQL stopping (fast shutdown) cuts sessions, then refuses new ones.
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
        # Every connection slot taken (max_connections), by this service or anyone else.
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    ],
)
def test_a_restarting_postgres_is_a_503_envelope_not_a_500(error: Exception) -> None:
    assert _answer(_asyncpg_failure(error)) == (
        503,
        {"status": "error", "data": None, "message": "Database unavailable, try again shortly"},
        "1",
    )


def test_a_driver_error_that_is_not_about_reaching_the_database_stays_a_500() -> None:
    error = _asyncpg_failure(asyncpg.exceptions.DivisionByZeroError("division by zero"))
    status, body, _ = _answer(error)
    assert (status, body["message"]) == (500, "Internal server error")
