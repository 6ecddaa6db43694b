"""Database operations on items; routes never write SQL themselves."""

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, delete, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from svc_common.auth import Principal

from server.models import Item, utcnow
from server.pages import ItemRow, ListQuery
from server.schemas import ItemIn

# The columns reads and writes return: rows, not ORM objects (no identity map, no object per
# row).
COLUMNS = (
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


async def list_items(
    session: AsyncSession, *, query: ListQuery, total: int | None = None
) -> tuple[Sequence[ItemRow], int]:
    """One page of matching items in the query's order, and how many match in all (counted
    unless `total` says it, or the page itself shows it).

    With a cursor the page starts after the (sort value, id) it names: an index range, so a
    deep page costs what the first one does, where OFFSET reads and drops every row before it.
    """
    conditions = _conditions(query)
    column = getattr(Item, query.sort.lstrip("-"))
    descending = query.sort.startswith("-")
    # The id breaks ties, so pages never overlap or skip rows with equal sort values.
    order = (column.desc(), Item.id.desc()) if descending else (column.asc(), Item.id.asc())
    page = select(*COLUMNS).where(*conditions).order_by(*order).limit(query.limit)
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
    if total is None:
        total = await session.scalar(select(func.count()).select_from(Item).where(*conditions))
    return rows, total or 0


async def get_item(session: AsyncSession, *, item_id: int) -> Item | None:
    """The item with this id, if any."""
    return await session.get(Item, item_id)


class KeyReused(Exception):
    """An Idempotency-Key already created a different item."""


async def autocommit(session: AsyncSession) -> AsyncConnection:
    """The session's connection without a transaction: each read or write here is one
    statement, atomic on its own, and without BEGIN and COMMIT (or ROLLBACK) it costs one round
    trip instead of three. Called first thing in a new session."""
    return await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


async def create_item(
    session: AsyncSession, *, data: ItemIn, owner: str, idempotency_key: str | None = None
) -> tuple[ItemRow, bool]:
    """Store a new item owned by `owner`: (item, True), or (the earlier item, False) on a replay.

    A replay is a POST whose Idempotency-Key already created an item for the same owner (a
    client retry, or the balancer resending after a backend died): it stores nothing.
    """
    fields = data.model_dump()
    now = utcnow()
    values = fields | {"owner": owner, "idempotency_key": idempotency_key}
    statement = insert(Item).values(**values, created_at=now, updated_at=now).returning(*COLUMNS)
    connection = await autocommit(session)
    try:
        return cast(ItemRow, (await connection.execute(statement)).one()), True
    except IntegrityError:
        if idempotency_key is None:
            raise
    earlier = (
        await connection.execute(
            select(*COLUMNS).where(Item.owner == owner, Item.idempotency_key == idempotency_key)
        )
    ).first()
    if earlier is None:
        raise KeyReused(idempotency_key)  # the item it made was deleted since: a new key, please
    stored = cast(ItemRow, earlier)
    if stored.version == 1 and {f: getattr(stored, f) for f in fields} != fields:
        raise KeyReused(idempotency_key)
    return stored, False


def _writable(item_id: int, user: Principal, versions: frozenset[int] | None) -> list[Any]:
    """An item this caller may change, at one of the versions If-Match names (if it did)."""
    where: list[Any] = [Item.id == item_id]
    if not user.is_admin:
        where.append(Item.owner == user.username)
    if versions is not None:
        where.append(Item.version.in_(versions))
    return where


async def replace_item(
    session: AsyncSession,
    *,
    item_id: int,
    data: ItemIn,
    user: Principal,
    versions: frozenset[int] | None,
) -> ItemRow | None:
    """Overwrite an item's fields and bump its version; None when this caller may not, at
    these versions (the route then finds out why).

    Owner, version and write are one statement, so two writers holding the same version
    cannot both succeed.
    """
    statement = (
        update(Item)
        .where(*_writable(item_id, user, versions))
        .values(**data.model_dump(), version=Item.version + 1, updated_at=utcnow())
        .returning(*COLUMNS)
    )
    connection = await autocommit(session)
    return cast(ItemRow | None, (await connection.execute(statement)).first())


async def delete_item(
    session: AsyncSession, *, item_id: int, user: Principal, versions: frozenset[int] | None
) -> ItemRow | None:
    """Remove an item; the deleted row, or None as replace_item() says."""
    statement = delete(Item).where(*_writable(item_id, user, versions)).returning(*COLUMNS)
    connection = await autocommit(session)
    return cast(ItemRow | None, (await connection.execute(statement)).first())
