"""The gateway's OpenAPI: its own routes plus the item servers' forwarded ones (/itens,
/identidade), fetched at run time.

The forwarding is plain ASGI middleware, so FastAPI knows nothing of /itens. Rather than a
second copy of the item schemas (services never import each other), the gateway reads the
servers' own OpenAPI (ITEMS_OPENAPI_URL) and merges their forwarded operations: the docs show
exactly what the running servers accept. Cached for a minute; if the servers cannot be
reached the gateway serves its own routes and tries again a few seconds later.
"""

import asyncio
import copy
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import FastAPI
from svc_common.forwarding.failures import UpstreamError
from svc_common.forwarding.pool import UpstreamPool
from svc_common.forwarding.replies import request_head

from api_gateway.proxy import is_forwarded

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
RETRY_SECONDS = 5.0
FETCH_SECONDS = 3.0
SECURITY_SCHEME = "OAuth2PasswordBearer"
_REF = "#/components/schemas/"
_ERROR = {"$ref": _REF + "ErrorEnvelope"}
# What the gateway itself may answer on a forwarded route, before or instead of the servers.
GATEWAY_RESPONSES = {
    "401": "Missing, invalid, expired or revoked token",
    "413": "Request body over MAX_BODY_BYTES",
    "429": "Rate limit exceeded (see Retry-After and RateLimit)",
    "502": "Bad gateway",
    "503": "Load balancer unreachable",
    "504": "Upstream timed out",
}


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            found.add(ref.removeprefix(_REF))
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _rename(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.removeprefix(_REF) in names:
            return {**node, "$ref": _REF + names[ref.removeprefix(_REF)]}
        return {key: _rename(value, names) for key, value in node.items()}
    if isinstance(node, list):
        return [_rename(value, names) for value in node]
    return node


def _reachable(roots: set[str], schemas: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(schemas[name], found)
        todo.extend(found - seen)
    return seen


def merge(own: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any]:
    """own plus upstream's forwarded paths and the component schemas they use."""
    merged = copy.deepcopy(own)
    paths = {p: ops for p, ops in upstream.get("paths", {}).items() if is_forwarded(p)}
    theirs: dict[str, Any] = upstream.get("components", {}).get("schemas", {})
    ours = merged.setdefault("components", {}).setdefault("schemas", {})
    roots: set[str] = set()
    _refs(paths, roots)
    needed = _reachable(roots, theirs)
    # Same name, different shape: upstream's copy is renamed rather than overwriting ours.
    names = {n: f"Itens{n}" for n in needed if n in ours and ours[n] != theirs[n]}
    for name in needed:
        ours[names.get(name, name)] = _rename(theirs[name], names)
    for path, operations in _rename(paths, names).items():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            # Swagger's Authorize (the password flow) is the gateway's; the token it gets works.
            operation["security"] = [{SECURITY_SCHEME: []}]
            responses = operation.setdefault("responses", {})
            for code, description in GATEWAY_RESPONSES.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                )
        merged.setdefault("paths", {})[path] = operations
    return merged


class MergedOpenAPI:
    """Async provider of the merged schema for svc_common's /openapi.json."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._upstream_schema: dict[str, Any] | None = None
        self._merged: dict[str, Any] | None = None
        self._next_fetch = 0.0
        self._lock = asyncio.Lock()

    async def __call__(self, app: FastAPI) -> dict[str, Any]:
        async with self._lock:
            if self._merged is None or time.monotonic() >= self._next_fetch:
                fetched = await self._fetch()
                if fetched is not None:
                    self._upstream_schema = fetched
                delay = CACHE_SECONDS if fetched is not None else RETRY_SECONDS
                self._next_fetch = time.monotonic() + delay
                own = app.openapi()
                self._merged = merge(own, self._upstream_schema) if self._upstream_schema else own
            return self._merged

    async def _fetch(self) -> dict[str, Any] | None:
        parts = urlsplit(self.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # Once a minute at most: a pool of its own for the one request, closed after it.
        pool = UpstreamPool(self.url, connect_timeout=FETCH_SECONDS, keepalive_timeout=0, limit=1)
        try:
            head = request_head(target.encode(), pool.host, [(b"accept", b"application/json")])
            reply = await pool.get(head, time_limit=FETCH_SECONDS)
            if reply.status != 200:
                raise ValueError(f"status {reply.status}")
            schema = orjson.loads(reply.body)
            if not isinstance(schema, dict) or not isinstance(schema.get("paths"), dict):
                raise ValueError("not an OpenAPI document")
        except (UpstreamError, ValueError) as exc:
            log.warning("item servers' OpenAPI unavailable at %s: %s", self.url, exc)
            return None
        finally:
            pool.close()
        return schema
