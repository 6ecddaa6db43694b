"""Alembic environment of the gateway (its own version table in a database it may share)."""

from api_gateway.models import VERSION_TABLE, Base
from svc_common.database import run_migrations

run_migrations(Base.metadata, version_table=VERSION_TABLE)
