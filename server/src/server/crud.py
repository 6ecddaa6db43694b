"""Database operations on items; routes never write SQL themselves."""

from collections.abc import Sequence
from typing import cast

from sqlalchemy import ColumnElement, delete, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Item, utcnow
from server.pages import ItemRow, ListQuery
from server.schemas import ItemIn

# The columns a listing returns: rows, not ORM objects (no identity map, no object per row).
_COLUMNS = (
    Item.id,
    Item.nome,
    Item.descricao,
    Item.preco,
    Item.owner,
    Item.created_at,
    Item.updated_at,
    Item.version,
)


def _conditions(query: ListQuery) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a listing's filters (the cursor aside)."""
    where: list[ColumnElement[bool]] = []
    if query.q:
        # autoescape: a % or _ in the query is a literal character, not a wildcard.
        where.append(Item.nome.icontains(query.q, autoescape=True))
    if query.min_preco is not None:
        where.append(Item.preco >= query.min_preco)
    if query.max_preco is not None:
        where.append(Item.preco <= query.max_preco)
    return where


async def list_items(session: AsyncSession, *, query: ListQuery) -> tuple[Sequence[ItemRow], int]:
    """One page of matching items in the query's order, and how many match in all.

    With a cursor the page starts after the (sort value, id) it names: an index range, so a
    deep page costs what the first one does, where OFFSET reads and drops every row before it.
    """
    conditions = _conditions(query)
    column = getattr(Item, query.sort.lstrip("-"))
    descending = query.sort.startswith("-")
    # The id breaks ties, so pages never overlap or skip rows with equal sort values.
    order = (column.desc(), Item.id.desc()) if descending else (column.asc(), Item.id.asc())
    page = select(*_COLUMNS).where(*conditions).order_by(*order).limit(query.limit)
    after = query.after
    if after is not None:
        edge = tuple_(column, Item.id)
        page = page.where(edge < tuple_(*after) if descending else edge > tuple_(*after))
    else:
        page = page.offset(query.offset)
    # A row has the item's attributes: what the encoder reads from an ORM item too.
    rows = cast(Sequence[ItemRow], (await session.execute(page)).all())
    if after is None and len(rows) < query.limit and (rows or query.offset == 0):
        return rows, query.offset + len(rows)  # the last page: it says the total itself
    total = await session.scalar(select(func.count()).select_from(Item).where(*conditions))
    return rows, total or 0


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
