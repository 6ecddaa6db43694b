"""Alembic migrations build the schema the models describe, and adopt pre-migration databases."""

from pathlib import Path
from typing import Any

from server.main import MIGRATIONS
from server.models import VERSION_TABLE, Base
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from svc_common.database import migrate

from conftest import schema_differences

# The table exactly as the foundation's create_all made it, before migrations existed.
FOUNDATION_ITENS = """
CREATE TABLE itens (
    id INTEGER NOT NULL, nome VARCHAR(100) NOT NULL, descricao VARCHAR(500) NOT NULL,
    preco NUMERIC(12, 2) NOT NULL, owner VARCHAR(64) NOT NULL,
    created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, PRIMARY KEY (id)
)
"""


def _engine(tmp_path: Path) -> AsyncEngine:
    return create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/app.db")


def _differences(conn: Connection) -> list[Any]:
    return schema_differences(conn, Base.metadata, VERSION_TABLE)


async def test_a_fresh_database_gets_exactly_the_models_schema(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    await migrate(engine, MIGRATIONS)
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
        head = await conn.scalar(text("SELECT version_num FROM alembic_version_server"))
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    assert head == "0003"
    assert tables == {"itens", VERSION_TABLE}, "one version table per service, no alembic_version"


async def test_a_pre_migration_database_is_adopted_and_keeps_its_rows(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    async with engine.begin() as conn:
        await conn.execute(text(FOUNDATION_ITENS))
        await conn.execute(text("CREATE INDEX ix_itens_owner ON itens (owner)"))
        await conn.execute(
            text(
                "INSERT INTO itens VALUES (7, 'Caneta', '', 2.50, 'ana',"
                " '2025-01-01 00:00:00', '2025-01-01 00:00:00')"
            )
        )
        await conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY)"))
    await migrate(engine, MIGRATIONS)
    await migrate(engine, MIGRATIONS)
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT id, nome, preco, version FROM itens"))).one()
        assert await conn.run_sync(_differences) == []
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    assert tuple(row) == (7, "Caneta", 2.5, 1)
    assert "users" in tables, "another service's table in the same database is left alone"
