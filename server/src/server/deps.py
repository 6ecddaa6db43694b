"""Dependencies of the item routes beyond the shared ones (session, current user)."""

from typing import Annotated

from fastapi import Depends, Request

from server.cache import ItemCache


async def get_item_cache(request: Request) -> ItemCache:
    """The item cache opened in the lifespan (a pass-through when REDIS_URL is unset)."""
    cache: ItemCache = request.app.state.item_cache
    return cache


ItemCacheDep = Annotated[ItemCache, Depends(get_item_cache)]
