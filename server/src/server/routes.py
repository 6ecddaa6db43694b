"""The /itens routes: list, create, read, replace, delete."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from svc_common.auth import CurrentUser, Principal
from svc_common.database import SessionDep
from svc_common.envelope import ERROR_RESPONSES, Envelope, ListEnvelope, ListMeta

from server import crud
from server.models import Item
from server.schemas import ItemIn, ItemOut

router = APIRouter(prefix="/itens", tags=["itens"], responses=ERROR_RESPONSES)

# Ids are PostgreSQL integers; a bigger number can only be a miss, so reject it as bad input.
ItemId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Item id")]


async def _existing(session: SessionDep, item_id: int) -> Item:
    item = await crud.get_item(session, item_id=item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Item {item_id} not found")
    return item


def _ensure_may_change(user: Principal, item: Item) -> None:
    if not user.is_admin and item.owner != user.username:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "Only the owner or an admin may change this item"
        )


@router.get("", summary="List items")
async def list_itens(
    session: SessionDep,
    _: CurrentUser,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ListEnvelope[ItemOut]:
    """A page of items; the total is in `meta` and `X-Total-Count`."""
    items, total = await crud.list_items(session, limit=limit, offset=offset)
    response.headers["X-Total-Count"] = str(total)
    return ListEnvelope[ItemOut](
        data=[ItemOut.model_validate(i) for i in items],
        meta=ListMeta(total=total, limit=limit, offset=offset),
        message=f"{len(items)} item(s)",
    )


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an item")
async def create_item(
    data: ItemIn, session: SessionDep, user: CurrentUser, response: Response
) -> Envelope[ItemOut]:
    """Store a new item owned by the caller."""
    item = await crud.create_item(session, data=data, owner=user.username)
    response.headers["Location"] = f"/itens/{item.id}"
    return Envelope[ItemOut](data=ItemOut.model_validate(item), message="Item created")


@router.get("/{item_id}", summary="Read an item")
async def read_item(item_id: ItemId, session: SessionDep, _: CurrentUser) -> Envelope[ItemOut]:
    """One item by id."""
    item = await _existing(session, item_id)
    return Envelope[ItemOut](data=ItemOut.model_validate(item))


@router.put("/{item_id}", summary="Replace an item", responses={403: ERROR_RESPONSES[401]})
async def replace_item(
    item_id: ItemId, data: ItemIn, session: SessionDep, user: CurrentUser
) -> Envelope[ItemOut]:
    """Overwrite an item's fields; only its owner or an admin may."""
    item = await _existing(session, item_id)
    _ensure_may_change(user, item)
    item = await crud.replace_item(session, item=item, data=data)
    return Envelope[ItemOut](data=ItemOut.model_validate(item), message="Item updated")


@router.delete("/{item_id}", summary="Delete an item", responses={403: ERROR_RESPONSES[401]})
async def delete_item(item_id: ItemId, session: SessionDep, user: CurrentUser) -> Envelope[ItemOut]:
    """Remove an item; only its owner or an admin may. Returns what was deleted."""
    item = await _existing(session, item_id)
    _ensure_may_change(user, item)
    gone = ItemOut.model_validate(item)
    await crud.delete_item(session, item=item)
    return Envelope[ItemOut](data=gone, message="Item deleted")
