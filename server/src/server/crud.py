"""Database operations on items; routes never write SQL themselves."""

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Item
from server.schemas import ItemIn


async def list_items(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[Sequence[Item], int]:
    """One page of items, oldest first, and the total count."""
    total = await session.scalar(select(func.count()).select_from(Item))
    page = await session.scalars(select(Item).order_by(Item.id).limit(limit).offset(offset))
    return page.all(), total or 0


async def get_item(session: AsyncSession, *, item_id: int) -> Item | None:
    """The item with this id, if any."""
    return await session.get(Item, item_id)


async def create_item(session: AsyncSession, *, data: ItemIn, owner: str) -> Item:
    """Store a new item owned by `owner`."""
    item = Item(**data.model_dump(), owner=owner)
    session.add(item)
    await session.commit()
    return item


async def replace_item(session: AsyncSession, *, item: Item, data: ItemIn) -> Item:
    """Overwrite an item's fields (PUT semantics)."""
    for field, value in data.model_dump().items():
        setattr(item, field, value)
    await session.commit()
    return item


async def delete_item(session: AsyncSession, *, item: Item) -> None:
    """Remove an item."""
    await session.delete(item)
    await session.commit()
