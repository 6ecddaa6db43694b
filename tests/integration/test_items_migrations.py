"""Server instances starting at once on a fresh PostgreSQL database migrate it exactly once."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from server.main import MIGRATIONS
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from svc_common.database import async_url, migrate

from tests.integration.conftest import PG_ADMIN_URL

HEADS = "SELECT version_num FROM alembic_version_server"
COLUMNS = "SELECT column_name FROM information_schema.columns WHERE table_name = 'itens'"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def fresh_database(postgres_database: str) -> AsyncIterator[str]:
    name = f"migrate_{uuid.uuid4().hex[:8]}"
    await _admin(f'CREATE DATABASE "{name}"')
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
