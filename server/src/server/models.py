"""The itens table (its schema changes go through Alembic migrations in server/migrations)."""

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import DateTime, Index, Numeric, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Timestamps are always timezone-aware UTC."""
    return datetime.now(UTC)


# The servers share a database with the gateway; each service keeps its own Alembic history.
VERSION_TABLE = "alembic_version_server"


class Base(DeclarativeBase):
    """Declarative base of the server's tables."""


class Item(Base):
    """An item for sale, owned by the user who created it."""

    __tablename__ = "itens"
    __table_args__ = (
        Index("uq_itens_owner_idempotency_key", "owner", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    nome: Mapped[str] = mapped_column(String(100))
    descricao: Mapped[str] = mapped_column(String(500), default="")
    preco: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    owner: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    # Bumped by every write; the ETag, If-Match and the cache's fences are built on it.
    version: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    # The client's (or the balancer's) Idempotency-Key of the POST that created it: a resent
    # POST with the same key finds this row instead of storing the item twice.
    idempotency_key: Mapped[str | None] = mapped_column(String(64), default=None)
