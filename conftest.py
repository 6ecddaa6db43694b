"""Fixtures shared by every test folder."""

import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData

TEST_KEY = "unit-test-signing-key-0123456789abcdef-0123456789"

TokenFactory = Callable[..., str]


def mint_token(
    key: str = TEST_KEY,
    *,
    sub: str = "admin",
    role: str = "admin",
    lifetime: int = 300,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    """A token shaped like the gateway's, with any claim overridden."""
    now = int(time.time())
    body = {
        "sub": sub,
        "role": role,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
        "type": "access",
    } | claims
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm)


@pytest.fixture
def make_token() -> TokenFactory:
    """Mint test tokens: make_token(sub="bob", role="user", lifetime=-10, ...)."""
    return mint_token


def schema_differences(conn: Connection, metadata: MetaData, version_table: str) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match these models."""
    context = MigrationContext.configure(
        conn,
        opts={
            "version_table": version_table,
            # Another service's tables in the same database are not ours to compare.
            "include_name": lambda name, kind, _: kind != "table" or name in metadata.tables,
        },
    )
    return list(compare_metadata(context, metadata))
