"""The users table (its schema changes go through Alembic migrations in migrations/)."""

from datetime import UTC, datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The gateway may share its database with the servers; each service keeps its own Alembic history.
VERSION_TABLE = "alembic_version_gateway"


class Base(DeclarativeBase):
    """Declarative base of the gateway's tables."""


class User(Base):
    """Someone who can log in."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )
