"""DATABASE_URLs with libpq's parameters, against the real PostgreSQL."""

import pytest
from server.main import MIGRATIONS
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from svc_common.database import create_engine, migrate
from svc_common.settings import DatabaseSettings


def _settings(url: str, **values: object) -> DatabaseSettings:
    return DatabaseSettings(
        service_name="server", porta=8002, database_url=url, _env_file=None, **values
    )  # type: ignore[call-arg]


async def test_sslmode_disable_and_no_statement_cache_migrate_and_query(
    postgres_database: str,
) -> None:
    # What a managed provider's URL looks like, and PgBouncer's setting: both must just work.
    engine = create_engine(
        _settings(f"{postgres_database}?sslmode=disable", db_statement_cache_size=0)
    )
    try:
        await migrate(engine, MIGRATIONS)  # in a child process, from the same URL
        async with engine.connect() as connection:
            for _ in range(3):  # the same statement again: no cached name may clash
                count = await connection.scalar(text("SELECT count(*) FROM itens"))
                assert count is not None
    finally:
        await engine.dispose()


async def test_sslmode_require_reaches_the_server_as_an_ssl_request(postgres_database: str) -> None:
    # The test server has no SSL: the refusal proves the mode got to the driver intact.
    engine = create_engine(_settings(f"{postgres_database}?sslmode=require"))
    try:
        with pytest.raises((OperationalError, DBAPIError, ConnectionError)) as refused:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        # asyncpg's own words: it asked for SSL (not a TypeError about an unknown sslmode).
        assert "rejected SSL upgrade" in str(refused.value)
    finally:
        await engine.dispose()
