"""Dependencies of the item routes beyond the shared ones (session, current user)."""

from decimal import Decimal
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError

from server.cache import ItemCache
from server.crud import ItemFilter
from server.schemas import NO_CONTROL_CHARACTERS

# Non-negative and fixed-point like the stored prices; NaN and infinities are refused.
PrecoBound = Annotated[Decimal | None, Query(ge=0, max_digits=12, decimal_places=2)]


async def get_item_cache(request: Request) -> ItemCache:
    """The item cache opened in the lifespan (a pass-through when REDIS_URL is unset)."""
    cache: ItemCache = request.app.state.item_cache
    return cache


async def item_filter(
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            # PostgreSQL text cannot hold NUL: refused here like in names, not a 500 there.
            pattern=NO_CONTROL_CHARACTERS,
            description="Name contains (any case)",
        ),
    ] = None,
    min_preco: PrecoBound = None,
    max_preco: PrecoBound = None,
) -> ItemFilter:
    """The listing filter from the query string."""
    if min_preco is not None and max_preco is not None and min_preco > max_preco:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "min_preco"),
                    "msg": "min_preco must not be greater than max_preco",
                    "type": "value_error",
                }
            ]
        )
    return ItemFilter(q=q, min_preco=min_preco, max_preco=max_preco)


ItemCacheDep = Annotated[ItemCache, Depends(get_item_cache)]
ItemFilterDep = Annotated[ItemFilter, Depends(item_filter)]
