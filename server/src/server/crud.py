"""Database operations on items; routes never write SQL themselves."""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Item, utcnow
from server.schemas import ItemIn

SortKey = Literal[
    "id",
    "-id",
    "nome",
    "-nome",
    "preco",
    "-preco",
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
]
# Any select statement: _ordered keeps the type of what it is given.
_AnySelect = TypeVar("_AnySelect", bound="Select[*tuple[Any, ...]]")

_SORT_COLUMNS = {
    "id": Item.id,
    "nome": Item.nome,
    "preco": Item.preco,
    "created_at": Item.created_at,
    "updated_at": Item.updated_at,
}


@dataclass(frozen=True)
class ItemFilter:
    """Which items a listing shows: name contains `q`, price within bounds."""

    q: str | None = None
    min_preco: Decimal | None = None
    max_preco: Decimal | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE clauses of this filter."""
        where: list[ColumnElement[bool]] = []
        if self.q:
            # autoescape: a % or _ in the query is a literal character, not a wildcard.
            where.append(Item.nome.icontains(self.q, autoescape=True))
        if self.min_preco is not None:
            where.append(Item.preco >= self.min_preco)
        if self.max_preco is not None:
            where.append(Item.preco <= self.max_preco)
        return where


def _ordered(query: _AnySelect, sort: SortKey) -> _AnySelect:
    column = _SORT_COLUMNS[sort.lstrip("-")]
    order = column.desc() if sort.startswith("-") else column.asc()
    # The id breaks ties, so pages never overlap or skip rows with equal sort values.
    return query.order_by(order, Item.id.desc() if sort.startswith("-") else Item.id.asc())


async def list_items(
    session: AsyncSession,
    *,
    limit: int,
    offset: int,
    where: ItemFilter | None = None,
    sort: SortKey = "id",
) -> tuple[Sequence[Item], int]:
    """One page of matching items in the given order, and how many match in all."""
    conditions = (where or ItemFilter()).conditions()
    # The total rides along with the page (a window count, before LIMIT and OFFSET apply):
    # one statement instead of two. Only a page past the end needs a count of its own.
    total_column = func.count().over().label("total")
    query = _ordered(select(Item, total_column).where(*conditions), sort)
    rows = (await session.execute(query.limit(limit).offset(offset))).all()
    if rows:
        return [row[0] for row in rows], int(rows[0][1])
    total = await session.scalar(select(func.count()).select_from(Item).where(*conditions))
    return [], total or 0


async def get_item(session: AsyncSession, *, item_id: int) -> Item | None:
    """The item with this id, if any."""
    return await session.get(Item, item_id)


class KeyReused(Exception):
    """An Idempotency-Key already created a different item."""


async def create_item(
    session: AsyncSession, *, data: ItemIn, owner: str, idempotency_key: str | None = None
) -> tuple[Item, bool]:
    """Store a new item owned by `owner`: (item, True), or (the earlier item, False) on a replay.

    A replay is a POST whose Idempotency-Key already created an item for the same owner (a
    client retry, or the balancer resending after a backend died): it stores nothing.
    """
    item = Item(**data.model_dump(), owner=owner, idempotency_key=idempotency_key)
    session.add(item)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        if idempotency_key is None:
            raise
        earlier = await session.scalar(
            select(Item).where(Item.owner == owner, Item.idempotency_key == idempotency_key)
        )
        if earlier is None:
            raise
        if earlier.version == 1 and _fields(earlier) != data.model_dump():
            raise KeyReused(idempotency_key) from None
        return earlier, False
    return item, True


def _fields(item: Item) -> dict[str, object]:
    return {field: getattr(item, field) for field in ItemIn.model_fields}


def _matching(item_id: int, expected_version: int | None) -> list[ColumnElement[bool]]:
    where = [Item.id == item_id]
    if expected_version is not None:
        where.append(Item.version == expected_version)
    return where


async def replace_item(
    session: AsyncSession, *, item_id: int, data: ItemIn, expected_version: int | None
) -> Item | None:
    """Overwrite an item's fields and bump its version; None when the expected version is gone.

    The version check and the write are one statement, so two writers holding the same
    version cannot both succeed.
    """
    statement = (
        update(Item)
        .where(*_matching(item_id, expected_version))
        .values(**data.model_dump(), version=Item.version + 1, updated_at=utcnow())
        .returning(Item)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    item = await session.scalar(statement)
    await session.commit()
    return item


async def delete_item(
    session: AsyncSession, *, item_id: int, expected_version: int | None
) -> Item | None:
    """Remove an item; the deleted row, or None when the expected version is gone."""
    statement = (
        delete(Item)
        .where(*_matching(item_id, expected_version))
        .returning(Item)
        .execution_options(synchronize_session=False)
    )
    item = await session.scalar(statement)
    await session.commit()
    return item
