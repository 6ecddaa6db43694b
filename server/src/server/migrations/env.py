"""Alembic environment of the item servers (their own version table in a shared database)."""

from server.models import VERSION_TABLE, Base
from svc_common.database import run_migrations

run_migrations(Base.metadata, version_table=VERSION_TABLE)
