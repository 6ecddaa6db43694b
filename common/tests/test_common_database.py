"""The seed's sync-style DATABASE_URL gets an async driver; a lost database is a 503."""

import logging

import asyncpg
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import exc, text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import QueuePool
from svc_common.database import SessionDep, create_engine, install_database_error_handler
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


# A PostgreSQL restart cuts the connection between the route's last statement and the
# session's close: the ROLLBACK that close() sends then fails (asyncpg ConnectionDoesNotExist).
_CUT = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle")


class _ClosingFails(AsyncSession):
    """A real session whose close() fails the way a connection PostgreSQL just cut does."""

    async def close(self) -> None:
        await super().close()
        raise _asyncpg_failure(_CUT)


def _app_whose_sessions_fail_to_close(route_error: Exception | None) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    install_database_error_handler(app)
    engine = create_async_engine("sqlite+aiosqlite://")
    app.state.sessions = async_sessionmaker(engine, class_=_ClosingFails)

    @app.get("/itens")
    async def itens(session: SessionDep) -> dict[str, int]:
        one = (await session.execute(text("SELECT 1"))).scalar_one()
        if route_error is not None:
            raise route_error
        return {"one": one}

    return app


def _errors_and_tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_session_that_fails_to_close_after_the_answer_keeps_the_answer_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = _app_whose_sessions_fail_to_close(None)
    with caplog.at_level(logging.INFO), TestClient(app) as client:  # raises what escapes ASGI
        response = client.get("/itens")
    assert (response.status_code, response.json()) == (200, {"one": 1})
    warned = [r for r in caplog.records if "closing the session" in r.getMessage()]
    assert [(r.levelno, r.exc_info) for r in warned] == [(logging.WARNING, None)]
    assert "GET /itens (answer sent)" in warned[0].getMessage()
    assert _errors_and_tracebacks(caplog) == []


@pytest.mark.parametrize(
    "route_error",
    [HTTPException(404, "Item 1 not found"), _asyncpg_failure(_CUT)],
    ids=["route-answered-404", "route-lost-the-database"],
)
def test_a_session_that_fails_to_close_before_the_answer_is_a_503_envelope(
    caplog: pytest.LogCaptureFixture, route_error: Exception
) -> None:
    app = _app_whose_sessions_fail_to_close(route_error)
    with caplog.at_level(logging.INFO), TestClient(app) as client:
        response = client.get("/itens")
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "data": None,
        "message": "Database unavailable, try again shortly",
    }
    assert response.headers["retry-after"] == "1"
    assert _errors_and_tracebacks(caplog) == []
