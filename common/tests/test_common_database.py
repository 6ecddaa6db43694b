"""The seed's sync-style DATABASE_URL gets an async driver."""

import pytest
from svc_common.database import async_url


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
