"""Cases (e) and (f): a bare FastAPI app answering the same item JSON, the cost of a server.

BENCH_ITEMS=items.json python -m bench.bare_app PORT

With BENCH_DATABASE_URL set (case f) its writes go to that PostgreSQL's itens table, one
asyncpg statement each; without it (case e) they stay in memory.
"""

import itertools
import os
import sys
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

# Created items kept in memory (case e): bounded, or a long write run would grow the app by
# hundreds of MB and its RSS would stop being a reference.
KEEP_CREATED = 10_000
# Like the servers' own pool (DB_POOL_SIZE's default).
POOL_SIZE = 10
_INSERT = """
INSERT INTO itens (nome, descricao, preco, owner, created_at, updated_at, version)
VALUES ($1, $2, $3, 'bench', now(), now(), 1)
RETURNING id, nome, descricao, preco, owner, created_at, updated_at, version
"""
_UPDATE = """
UPDATE itens SET nome = $2, descricao = $3, preco = $4, updated_at = now(), version = version + 1
WHERE id = $1
RETURNING id, nome, descricao, preco, owner, created_at, updated_at, version
"""
_JSON = orjson.OPT_UTC_Z


def _row(record: asyncpg.Record | None) -> dict[str, Any]:
    assert record is not None  # INSERT ... RETURNING returns the row it stored
    item = dict(record)
    item["preco"] = float(item["preco"])
    return item


def build_app(items: list[dict[str, Any]], database_url: str | None = None) -> FastAPI:
    """Items by id in a dict; the list pages are slices of them in id order."""
    by_id = {item["id"]: item for item in items}
    order = sorted(by_id)
    created: OrderedDict[int, dict[str, Any]] = OrderedDict()
    next_id = itertools.count(max(order, default=0) + 1_000_000)
    pool: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if database_url:
            pool.append(
                await asyncpg.create_pool(database_url, min_size=POOL_SIZE, max_size=POOL_SIZE)
            )
        yield
        for p in pool:
            await p.close()

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)

    def envelope(data: Any, status: int = 200, **extra: Any) -> Response:
        body = orjson.dumps(
            {"status": "success", "data": data, "message": None, **extra}, option=_JSON
        )
        return Response(body, status_code=status, media_type="application/json")

    @app.get("/itens/{item_id}")
    async def read_item(item_id: int) -> Response:
        item = by_id.get(item_id)
        if item is None:
            return Response(status_code=404)
        return envelope(item)

    @app.get("/itens")
    async def list_itens(limit: int = 50, offset: int = 0, sort: str = "id") -> Response:
        ids = order if sort != "-id" else order[::-1]
        page = [by_id[i] for i in ids[offset : offset + limit]]
        meta = {"total": len(order), "limit": limit, "offset": offset}
        response = envelope(page, meta=meta)
        # The headers a server's page carries, so the reference does not skip their cost.
        response.headers["X-Total-Count"] = str(len(order))
        if len(page) == limit:
            response.headers["Link"] = f'</itens?limit={limit}&offset={offset + limit}>; rel="next"'
        return response

    @app.post("/itens")
    async def create_item(request: Request) -> Response:
        data = orjson.loads(await request.body())
        if pool:
            async with pool[0].acquire() as conn:
                record = await conn.fetchrow(
                    _INSERT, data["nome"], data.get("descricao", ""), Decimal(str(data["preco"]))
                )
            item = _row(record)
        else:
            now = datetime.now(UTC)
            item = {
                "id": next(next_id),
                "nome": data["nome"],
                "descricao": data.get("descricao", ""),
                "preco": float(data["preco"]),
                "owner": "bench",
                "created_at": now,
                "updated_at": now,
                "version": 1,
            }
            created[item["id"]] = item
            if len(created) > KEEP_CREATED:
                created.popitem(last=False)
        response = envelope(item, status=201)
        response.headers["Location"] = f"/itens/{item['id']}"
        return response

    @app.put("/itens/{item_id}")
    async def replace_item(item_id: int, request: Request) -> Response:
        data = orjson.loads(await request.body())
        if pool:
            async with pool[0].acquire() as conn:
                record = await conn.fetchrow(
                    _UPDATE,
                    item_id,
                    data["nome"],
                    data.get("descricao", ""),
                    Decimal(str(data["preco"])),
                )
            if record is None:
                return Response(status_code=404)
            return envelope(_row(record))
        item = by_id.get(item_id)
        if item is None:
            return Response(status_code=404)
        item.update(data)
        item["version"] += 1
        return envelope(item)

    return app


def main() -> None:
    """Serve on 127.0.0.1:PORT the way the services are served (uvloop, httptools)."""
    with open(os.environ["BENCH_ITEMS"], "rb") as f:
        items = orjson.loads(f.read())
    uvicorn.run(
        build_app(items, os.environ.get("BENCH_DATABASE_URL")),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
