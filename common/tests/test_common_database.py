"""The seed's sync-style DATABASE_URL gets an async driver."""

import pytest
from sqlalchemy.pool import QueuePool
from svc_common.database import async_url, create_engine
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
