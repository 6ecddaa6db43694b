"""Case (e): a bare FastAPI app answering the same item JSON from memory, the cost of a server.

BENCH_ITEMS=items.json python -m bench.bare_app PORT
"""

import os
import sys
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response


def build_app(items: list[dict[str, Any]]) -> FastAPI:
    """Items by id in a dict; the list is the first page, as the servers order it."""
    by_id = {item["id"]: item for item in items}
    order = sorted(by_id)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    def envelope(data: Any) -> Response:
        body = orjson.dumps({"status": "success", "data": data, "message": None})
        return Response(body, media_type="application/json")

    @app.get("/itens/{item_id}")
    async def read_item(item_id: int) -> Response:
        item = by_id.get(item_id)
        if item is None:
            return Response(status_code=404)
        return envelope(item)

    @app.get("/itens")
    async def list_itens(limit: int = 50, offset: int = 0) -> Response:
        page = order[offset : offset + limit]
        return envelope([by_id[i] for i in page])

    @app.put("/itens/{item_id}")
    async def replace_item(item_id: int, request: Request) -> Response:
        item = by_id.get(item_id)
        if item is None:
            return Response(status_code=404)
        item.update(orjson.loads(await request.body()))
        item["version"] += 1
        return envelope(item)

    return app


def main() -> None:
    """Serve on 127.0.0.1:PORT the way the services are served (uvloop, httptools)."""
    with open(os.environ["BENCH_ITEMS"], "rb") as f:
        items = orjson.loads(f.read())
    uvicorn.run(
        build_app(items),
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
