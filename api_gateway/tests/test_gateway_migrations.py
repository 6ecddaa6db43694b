"""The gateway's migrations build the users table its model describes, beside the servers'."""

from pathlib import Path
from typing import Any

from api_gateway.main import MIGRATIONS
from api_gateway.models import VERSION_TABLE, Base
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine
from svc_common.database import migrate

from conftest import schema_differences


def _differences(conn: Connection) -> list[Any]:
    return schema_differences(conn, Base.metadata, VERSION_TABLE)


async def test_a_fresh_database_gets_exactly_the_users_model(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/app.db")
    await migrate(engine, MIGRATIONS)
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
        head = await conn.scalar(text("SELECT version_num FROM alembic_version_gateway"))
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    assert head == "0001"
    assert tables == {"users", VERSION_TABLE}


async def test_a_users_table_made_by_create_all_is_adopted_with_its_rows(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/app.db")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(
            text(
                "INSERT INTO users (username, password_hash, role, created_at)"
                " VALUES ('maria', 'x', 'user', '2025-01-01 00:00:00')"
            )
        )
    await migrate(engine, MIGRATIONS)
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT username FROM users")) == "maria"
        assert await conn.run_sync(_differences) == []
    await engine.dispose()
