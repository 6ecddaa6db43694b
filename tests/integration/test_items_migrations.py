"""Server instances starting at once on a fresh PostgreSQL database migrate it exactly once."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from server.main import MIGRATIONS
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from svc_common.database import migrate
from svc_common.database_url import async_url

from tests.integration.databases import create_database, drop_database

HEADS = "SELECT version_num FROM alembic_version_server"
COLUMNS = "SELECT column_name FROM information_schema.columns WHERE table_name = 'itens'"


@pytest.fixture
async def fresh_database(postgres_database: str) -> AsyncIterator[str]:
    url = await create_database("migrate")
    yield url
    await drop_database(url)


async def test_instances_starting_together_migrate_once_without_racing(
    fresh_database: str,
) -> None:
    engines = [create_async_engine(async_url(fresh_database)) for _ in range(4)]
    try:
        # Without the lock concurrent DDL blocks (or fails): the deadline makes that a failure.
        async with asyncio.timeout(60):
            await asyncio.gather(*(migrate(engine, MIGRATIONS) for engine in engines))
        async with engines[0].connect() as conn:
            heads = (await conn.execute(text(HEADS))).all()
            columns = await conn.scalars(text(COLUMNS))
            assert [tuple(h) for h in heads] == [("0003",)]
            assert "version" in set(columns)
    finally:
        for engine in engines:
            await engine.dispose()
