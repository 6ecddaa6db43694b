"""The /itens routes: list, create, read, replace, delete."""

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession
from svc_common.auth import CurrentUser, Principal
from svc_common.database import SessionDep
from svc_common.envelope import ERROR_RESPONSES, Envelope, ErrorEnvelope, ListEnvelope

from server import crud
from server.cache import ItemCache
from server.deps import ItemCacheDep
from server.pages import ItemRow, ListQuery, item_envelope
from server.preconditions import etag, precondition_failed, versions_named
from server.reads import read_item as read_one
from server.reads import read_page
from server.schemas import ItemIn, ItemOut

router = APIRouter(prefix="/itens", tags=["itens"], responses=ERROR_RESPONSES)

# Ids are PostgreSQL integers; a bigger number can only be a miss, so reject it as bad input.
ItemId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Item id")]
IfMatch = Annotated[
    str | None, Header(description="Only change the item if its ETag is still this one")
]
IfNoneMatch = Annotated[str | None, Header(description="304 when the item still has this ETag")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="Sending the same POST again with this key stores the item only once",
    ),
]
_REPLAYED = {"Idempotent-Replayed": "true"}
_CHANGE_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorEnvelope, "description": "Not the owner nor an admin"},
    412: {"model": ErrorEnvelope, "description": "If-Match names an older version"},
}


async def _refusal(
    session: AsyncSession, *, item_id: int, user: Principal, versions: frozenset[int] | None
) -> HTTPException:
    """Why a write that matched no row did not happen: 404, 403, or 412 with the current ETag."""
    item = await crud.get_item(session, item_id=item_id)
    if item is None:
        return HTTPException(status.HTTP_404_NOT_FOUND, f"Item {item_id} not found")
    if not user.is_admin and item.owner != user.username:
        return HTTPException(
            status.HTTP_403_FORBIDDEN, "Only the owner or an admin may change this item"
        )
    if versions is None:  # deleted and gone between the write and this read
        return HTTPException(status.HTTP_404_NOT_FOUND, f"Item {item_id} not found")
    return precondition_failed(item_id, current=etag(item_id, item.version))


def _written(item: ItemRow, message: str, *, status_code: int = 200, **headers: str) -> Response:
    """A write's answer: the envelope of the item as stored, and its ETag."""
    headers["ETag"] = etag(item.id, item.version)
    body = item_envelope(item, message)
    return Response(body, status_code, headers, media_type="application/json")


@router.get(
    "",
    summary="List items",
    response_model=ListEnvelope[ItemOut],
    responses={304: {"description": "Not modified: If-None-Match names the current ETag"}},
)
async def list_itens(
    *,
    request: Request,
    query: Annotated[ListQuery, Query()],
    _: CurrentUser,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """A page of items; the total of matching items is in `meta` and `X-Total-Count`. A full
    page links to the next one (`Link: <...>; rel="next"`, keyset: as fast deep as on top)."""
    # Plain listings are answered on the lane (ItemReadLane), with the same read_page().
    cache: ItemCache = request.app.state.item_cache
    return await read_page(
        cache=cache,
        sessions=request.app.state.sessions,
        query=query,
        if_none_match=if_none_match,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an item",
    response_model=Envelope[ItemOut],
    responses={422: {"model": ErrorEnvelope, "description": "Invalid body, or key reused"}},
)
async def create_item(
    *,
    data: ItemIn,
    session: SessionDep,
    cache: ItemCacheDep,
    user: CurrentUser,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Store a new item owned by the caller; a repeated Idempotency-Key returns the first one."""
    try:
        item, created = await crud.create_item(
            session, data=data, owner=user.username, idempotency_key=idempotency_key
        )
    except crud.KeyReused:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "This Idempotency-Key was already used for a different item",
        ) from None
    location = f"/itens/{item.id}"
    if not created:
        message = "Item already created with this Idempotency-Key"
        return _written(item, message, status_code=201, Location=location, **_REPLAYED)
    # No entry to drop, but every listing may now include it.
    await cache.invalidate(item.id, item.version, added_or_removed=True)
    return _written(item, "Item created", status_code=201, Location=location)


@router.get(
    "/{item_id}",
    summary="Read an item",
    response_model=Envelope[ItemOut],
    responses={304: {"description": "Not modified: If-None-Match names the current ETag"}},
)
async def read_item(
    *,
    request: Request,
    item_id: ItemId,
    _: CurrentUser,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """One item by id, with its ETag; served from the item cache when Redis is configured."""
    # Plain reads are answered on the lane (ItemReadLane), with the same read_one().
    cache: ItemCache = request.app.state.item_cache
    return await read_one(
        cache=cache,
        sessions=request.app.state.sessions,
        item_id=item_id,
        if_none_match=if_none_match,
    )


@router.put(
    "/{item_id}",
    summary="Replace an item",
    response_model=Envelope[ItemOut],
    responses=_CHANGE_ERRORS,
)
async def replace_item(
    *,
    item_id: ItemId,
    data: ItemIn,
    session: SessionDep,
    cache: ItemCacheDep,
    user: CurrentUser,
    if_match: IfMatch = None,
) -> Response:
    """Overwrite an item's fields; only its owner or an admin may. Send If-Match to be safe."""
    versions = versions_named(if_match, item_id=item_id)
    updated = await crud.replace_item(
        session, item_id=item_id, data=data, user=user, versions=versions
    )
    if updated is None:
        raise await _refusal(session, item_id=item_id, user=user, versions=versions)
    await cache.invalidate(item_id, updated.version, added_or_removed=False)
    return _written(updated, "Item updated")


@router.delete(
    "/{item_id}",
    summary="Delete an item",
    response_model=Envelope[ItemOut],
    responses=_CHANGE_ERRORS,
)
async def delete_item(
    *,
    item_id: ItemId,
    session: SessionDep,
    cache: ItemCacheDep,
    user: CurrentUser,
    if_match: IfMatch = None,
) -> Response:
    """Remove an item; only its owner or an admin may. Returns what was deleted."""
    versions = versions_named(if_match, item_id=item_id)
    gone = await crud.delete_item(session, item_id=item_id, user=user, versions=versions)
    if gone is None:
        raise await _refusal(session, item_id=item_id, user=user, versions=versions)
    # The fence goes past the last version, so no reader can put the deleted item back.
    await cache.invalidate(item_id, gone.version + 1, added_or_removed=True)
    return _written(gone, "Item deleted")
