"""Async SQLAlchemy engines from the seed's DATABASE_URL, and Alembic migrations under a lock."""

import asyncio
import fcntl
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from sqlalchemy import Connection, MetaData, event, exc, pool, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from starlette.responses import Response

from svc_common import tracing_setup
from svc_common.database_url import async_url, translating
from svc_common.envelope import error_response
from svc_common.settings import DEFAULT_DATABASE_URL, DatabaseSettings

log = logging.getLogger(__name__)

# Any fixed number works: it names the lock every instance takes before touching the schema.
_SCHEMA_LOCK_ID = 7_224_001


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    # WAL lets server, server2 and the gateway share one file; busy_timeout queues writers.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    """One pooled engine per process, opened in the lifespan."""
    url = async_url(settings.database_url, statement_cache_size=settings.db_statement_cache_size)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        tracing_setup.instrument_engine(engine)
        return engine
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_pre_ping=True,
        pool_recycle=1800,
    )
    tracing_setup.instrument_engine(engine)
    return translating(engine)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request from app.state.sessions, opened in the lifespan."""
    answered = False
    try:
        async with request.app.state.sessions() as session:
            yield session
            answered = True
    except DATABASE_ERRORS as error:
        # Closing rolls back on the connection, which a restarting PostgreSQL may just have
        # cut. Before the answer, that is the handlers' 503. After it (FastAPI closes the
        # session once the answer is sent), raising would only turn a sent answer into an
        # "Exception in ASGI application" and a closed keep-alive connection.
        if not answered:
            raise
        log.warning(
            "database lost closing the session of %s %s (answer sent): %s",
            request.method,
            request.url.path,
            error,
        )


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


@asynccontextmanager
async def schema_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """Serialise schema changes between instances starting at the same time."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _SCHEMA_LOCK_ID})
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _SCHEMA_LOCK_ID})
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    fd = os.open(f"{database}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


async def migrate(engine: AsyncEngine, script_location: Path) -> None:
    """Upgrade to the newest Alembic revision, one instance at a time (call from the lifespan).

    On a server database the upgrade runs in a child process, so Alembic (with Mako and
    Pygments) never loads into the service: about 15 MB less resident memory for the rest of
    its life. SQLite, the embedded development default, is upgraded in process: a child's
    two seconds of start-up would be most of a test's time there.
    """
    if engine.dialect.name == "sqlite":
        async with schema_lock(engine), engine.begin() as conn:
            await conn.run_sync(_upgrade, script_location)
        return
    # The URL travels in the environment, not argv, so the password stays out of `ps`.
    env = dict(os.environ, MIGRATE_DATABASE_URL=engine.url.render_as_string(hide_password=False))
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "svc_common.database",
        str(script_location),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await child.communicate()
    for line in output.decode(errors="replace").splitlines():
        log.info("%s", line)
    if child.returncode != 0:
        raise RuntimeError(f"database migrations failed (exit {child.returncode})")


def _migrate_here(url: str, script_location: Path) -> None:
    """The child's side of migrate()."""
    engine = translating(create_async_engine(url, poolclass=pool.NullPool))

    async def run() -> None:
        async with schema_lock(engine), engine.begin() as conn:
            await conn.run_sync(_upgrade, script_location)
        await engine.dispose()

    asyncio.run(run())


def _upgrade(connection: Connection, script_location: Path) -> None:
    from alembic import command  # noqa: PLC0415 - only where migrations run
    from alembic.config import Config  # noqa: PLC0415

    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def run_migrations(metadata: MetaData, *, version_table: str) -> None:
    """The body of a service's Alembic env.py: one version table per service, only its tables."""
    from alembic import context  # noqa: PLC0415 - env.py runs inside Alembic

    connection: Connection | None = context.config.attributes.get("connection")
    if connection is not None:
        _run_on(connection, metadata, version_table)
        return
    # Run from the alembic command line (e.g. `alembic revision --autogenerate`).
    url = async_url(os.environ.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL)

    async def run_online() -> None:
        engine = translating(create_async_engine(url, poolclass=pool.NullPool))
        async with schema_lock(engine), engine.begin() as conn:
            await conn.run_sync(_run_on, metadata, version_table)
        await engine.dispose()

    asyncio.run(run_online())


def _run_on(connection: Connection, metadata: MetaData, version_table: str) -> None:
    from alembic import context  # noqa: PLC0415 - only where migrations run

    def own_tables(name: str | None, type_: str, _: Any) -> bool:
        # Services share one database: never diff (or drop) another service's tables.
        return type_ != "table" or name in metadata.tables

    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table,
        include_name=own_tables,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


# SQLSTATE classes of a server that is gone or turning clients away: 08 (connection
# exception), 53300 (too many connections: every slot taken, by us or by others) and 57P
# (operator intervention: admin shutdown, crash shutdown, "the database system is starting
# up / shutting down"). asyncpg reports these as plain DBAPIErrors.
_UNAVAILABLE_SQLSTATES = ("08", "53300", "57P")


def is_unavailable(error: exc.DBAPIError) -> bool:
    """Whether a driver error means the database cannot be reached, not that the query failed."""
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


# Errors of a database that cannot be reached, whatever the driver says beyond that.
UNAVAILABLE_ERRORS = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, OSError)
# Every database error: the handlers answer them (a 503 when unreachable, else a 500).
DATABASE_ERRORS = (*UNAVAILABLE_ERRORS, exc.DBAPIError)


def database_error_answer(error: Exception, *, method: str, path: str) -> Response:
    """The answer to a database error on a request, on the ASGI path and the lane alike: 503
    with Retry-After when the database cannot be reached, else a 500."""
    unavailable = isinstance(error, UNAVAILABLE_ERRORS) or (
        isinstance(error, exc.DBAPIError) and is_unavailable(error)
    )
    if unavailable:
        log.warning("database unavailable on %s %s: %s", method, path, error)
        return error_response(
            503, "Database unavailable, try again shortly", headers={"Retry-After": "1"}
        )
    log.error("database error on %s %s", method, path, exc_info=error)
    return error_response(500, "Internal server error")


async def _database_error(request: Request, error: Exception) -> Response:
    return database_error_answer(error, method=request.method, path=request.url.path)


def install_database_error_handler(app: FastAPI) -> None:
    """A lost, restarting or saturated database is a 503 in the envelope, not a 500."""
    # Any other driver error too: a 503 when it says the server is gone or restarting.
    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, _database_error)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    _migrate_here(os.environ["MIGRATE_DATABASE_URL"], Path(sys.argv[1]))
